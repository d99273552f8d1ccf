"""LoRA deltas: training starts at the base model, and a saved delta merged into a fresh base gives the network
that was trained, refusing deltas that do not fit."""
from __future__ import annotations

import json

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from dogsearch.models import heads as H
from dogsearch.models import lora as L
from dogsearch.models import registry as R
from dogsearch.models.weights import WeightsError


def tiny_vit(seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=28, patch_size=14, embed_dim=16, depth=2, num_heads=2, num_classes=0,
                             init_values=1e-5).eval()


def _train_a_little(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, L.LoRALinear):
                m.lora_b.normal_(std=0.1)
        module.norm.weight.add_(0.5)


def test_a_fresh_adapter_leaves_the_model_unchanged():
    x = torch.randn(3, 3, 28, 28)
    base = tiny_vit()
    expected = base(x)
    wrapped = L.add_lora(base, rank=4, alpha=8.0)
    assert len(wrapped) == 2 * 4  # qkv, proj, fc1, fc2 in each of 2 blocks
    torch.testing.assert_close(base(x), expected)


def test_merged_delta_equals_the_trained_adapters():
    x = torch.randn(3, 3, 28, 28)
    student = tiny_vit()
    L.add_lora(student, rank=4, alpha=8.0)
    _train_a_little(student)
    trained = student(x)
    delta = L.delta_state(student, full=["norm.weight"])
    assert set(delta) >= {"blocks.0.attn.qkv.lora_a", "blocks.1.mlp.fc2.lora_b", "norm.weight"}

    fresh = tiny_vit()
    assert not torch.allclose(fresh(x), trained)
    L.merge_delta(fresh, delta, scale=8.0 / 4)
    torch.testing.assert_close(fresh(x), trained, rtol=1e-4, atol=1e-5)


def test_a_delta_that_does_not_fit_changes_nothing():
    module = tiny_vit()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    bad = {"blocks.0.attn.qkv.lora_a": torch.zeros(4, 16), "blocks.0.attn.qkv.lora_b": torch.ones(48, 4),
           "norm.weight": torch.ones(17)}
    with pytest.raises(WeightsError, match="norm.weight"):
        L.merge_delta(module, bad, scale=1.0)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, before[key])
    with pytest.raises(WeightsError, match="missing B"):
        L.merge_delta(module, {"blocks.0.attn.qkv.lora_a": torch.zeros(4, 16)}, scale=1.0)


def test_a_shipped_lora_folder_loads_by_name_with_its_checksum(tmp_path, monkeypatch, register_model):
    student = tiny_vit()
    L.add_lora(student, rank=2, alpha=2.0)
    _train_a_little(student)
    folder = tmp_path / "tiny-lora"
    sha = L.save_delta(L.delta_state(student, full=["norm.weight"]), folder)
    config = {"kind": "lora", "base": "tiny-base", "lora": {"rank": 2, "alpha": 2.0}, "sha256": sha}
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(H, "MODELS_DIR", tmp_path)

    @register_model("tiny-base")  # the base is built through the registry, as the real ViT is
    def tiny_base(args: R.BuildArgs) -> R.Backbone:
        return R.Backbone(tiny_vit(), "tiny-base", {"input_size": (3, 28, 28), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                                                   "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"})

    model = R.create_model("tiny-lora")
    assert model.model_id == "tiny-lora"
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(model.module(x), student(x), rtol=1e-2, atol=1e-3)  # the delta is stored in fp16

    for wrong, message in (({"lora": {"rank": 3, "alpha": 2.0}}, "ranks"),
                           ({"base_model_id": "tiny-base-v0"}, "trained on tiny-base-v0")):
        (folder / "config.json").write_text(json.dumps(config | wrong))
        with pytest.raises(WeightsError, match=message):
            R.create_model("tiny-lora")
    (folder / "config.json").write_text(json.dumps(config))
    (folder / L.DELTA_FILE).write_bytes((folder / L.DELTA_FILE).read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsError, match="checksum"):
        R.create_model("tiny-lora")


def test_a_delta_on_a_trained_model_adapts_only_its_last_blocks(tmp_path, monkeypatch, register_model):
    """The default's second delta (scripts/vit-top-blocks.py) is a LoRA on the last blocks of a LoRA model: both
    deltas merge, in order, and the blocks it does not name stay the first model's."""
    monkeypatch.setattr(H, "MODELS_DIR", tmp_path)
    first = tiny_vit()
    L.add_lora(first, rank=2, alpha=2.0)
    _train_a_little(first)
    sha = L.save_delta(L.delta_state(first), tmp_path / "tiny-v1")
    (tmp_path / "tiny-v1" / "config.json").write_text(json.dumps(
        {"kind": "lora", "base": "tiny-base", "lora": {"rank": 2, "alpha": 2.0}, "sha256": sha}))

    @register_model("tiny-base")
    def tiny_base(args: R.BuildArgs) -> R.Backbone:
        return R.Backbone(tiny_vit(), "tiny-base", {"input_size": (3, 28, 28), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                                                   "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center"})

    v1 = R.create_model("tiny-v1").module
    second = R.create_model("tiny-v1").module  # merged: the second delta trains on the first model as served
    L.add_lora(second, rank=4, alpha=4.0, targets=tuple(f"blocks.1.{t}" for t in L.VIT_TARGETS))
    _train_a_little(second)
    sha = L.save_delta(L.delta_state(second, full=["norm.weight"]), tmp_path / "tiny-v2")
    (tmp_path / "tiny-v2" / "config.json").write_text(json.dumps(
        {"kind": "lora", "base": "tiny-v1", "base_model_id": "tiny-v1", "lora": {"rank": 4, "alpha": 4.0},
         "sha256": sha}))

    v2 = R.create_model("tiny-v2")
    assert v2.model_id == "tiny-v2"
    x = torch.randn(2, 3, 28, 28)
    torch.testing.assert_close(v2.module(x), second(x), rtol=1e-2, atol=1e-3)
    assert not torch.allclose(v2.module(x), v1(x), atol=1e-3)
    state, before = v2.module.state_dict(), v1.state_dict()
    assert all(torch.equal(state[k], before[k]) for k in before if k.startswith("blocks.0."))
    assert not torch.equal(state["blocks.1.attn.qkv.weight"], before["blocks.1.attn.qkv.weight"])

    # pinned to the first model's delta: a retrained first model under the same name is refused, not merged into
    config = json.loads((tmp_path / "tiny-v2" / "config.json").read_text())
    v1_sha = json.loads((tmp_path / "tiny-v1" / "config.json").read_text())["sha256"]
    (tmp_path / "tiny-v2" / "config.json").write_text(json.dumps(config | {"base_sha256": v1_sha}))
    assert R.create_model("tiny-v2").model_id == "tiny-v2"
    (tmp_path / "tiny-v2" / "config.json").write_text(json.dumps(config | {"base_sha256": "0" * 64}))
    with pytest.raises(WeightsError, match="was trained on 'tiny-v1' with delta sha256 0000"):
        R.create_model("tiny-v2")
