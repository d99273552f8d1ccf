"""A ViT run at a smaller input (fewer patches: issue 20): its position embedding resampled as DINOv2 resamples its
own, reachable as a config-only model (``"kind": "input-size"``) with its own model id and preprocessing, on both
runtimes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from timm.models.vision_transformer import VisionTransformer

from dogsearch.models import registry as R
from dogsearch.models.dinov2 import with_input_size
from dogsearch.models.weights import WeightsError

CONFIG = {"input_size": (3, 42, 42), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear",
          "crop_pct": 0.875, "crop_mode": "center"}


def tiny_vit() -> VisionTransformer:
    torch.manual_seed(0)
    module = VisionTransformer(img_size=42, patch_size=14, embed_dim=16, depth=2, num_heads=2, num_classes=0).eval()
    with torch.no_grad():
        module.pos_embed.normal_(std=0.5)  # timm starts it near zero: a resampling that went wrong would not show
    return module


def test_fewer_patches_resample_the_position_embedding_bicubically_and_keep_the_rest():
    module = tiny_vit()
    same = with_input_size(module, 42)
    x = torch.randn(2, 3, 42, 42)
    with torch.no_grad():
        torch.testing.assert_close(same(x), module(x), rtol=0, atol=0)
        small = with_input_size(module, 28)
        assert small(torch.randn(2, 3, 28, 28)).shape == (2, 16)
    grid = module.pos_embed[:, 1:].reshape(1, 3, 3, 16).permute(0, 3, 1, 2)
    want = F.interpolate(grid, size=(2, 2), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 4, 16)
    torch.testing.assert_close(small.pos_embed[:, 1:], want)
    torch.testing.assert_close(small.pos_embed[:, :1], module.pos_embed[:, :1])  # the class token's
    assert module.pos_embed.shape == (1, 10, 16)  # a copy: the original runs at its own size still
    for bad in (30, 7):
        with pytest.raises(ValueError, match="multiple of its 14-px patch"):
            with_input_size(module, bad)


@pytest.fixture
def small_model(model_on_base):
    return model_on_base("tiny-28px", {"kind": "input-size", "input-size": {"size": 28}}, tiny_vit, CONFIG)


def test_a_smaller_input_is_a_model_of_its_own_on_both_runtimes(small_model, tmp_path):
    model = R.create_model("tiny-28px")
    assert model.model_id == "tiny-28px"
    assert model.data_config["input_size"] == (3, 28, 28)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    pixels = model.preprocess(photo)
    assert pixels.shape == (3, 28, 28)  # the same crop of the photo as the base's, at fewer pixels
    base = R.create_model("tiny-base")
    assert not np.allclose(model.embed(pixels), base.embed(base.preprocess(photo)), atol=1e-3)
    onnx = R.create_model("tiny-28px", runtime="onnxruntime", cache_dir=str(tmp_path / "cache"))
    assert onnx.model_id == "tiny-28px"
    np.testing.assert_allclose(onnx.embed(pixels), model.embed(pixels), atol=1e-5)


@pytest.mark.parametrize("size", [30, "28", None])
def test_a_bad_size_is_a_clear_error(small_model, size):
    (small_model / "config.json").write_text(json.dumps(
        {"kind": "input-size", "base": "tiny-base", "input-size": {"size": size}}))
    with pytest.raises(WeightsError, match="tiny-28px"):
        R.create_model("tiny-28px")


def test_a_delta_trained_at_the_smaller_input_serves_on_it(small_model):
    """scripts/vit-student.py trains the smaller-input model further (LoRA, and the resampled position embedding as
    a whole tensor) and saves a "lora" folder on the "input-size" one: it builds into what was trained."""
    from dogsearch.models import lora as L

    student = with_input_size(tiny_vit(), 28)
    torch.manual_seed(1)
    L.add_lora(student, rank=2, alpha=2.0)
    with torch.no_grad():
        for m in student.modules():
            if isinstance(m, L.LoRALinear):
                m.lora_b.normal_(std=0.1)
        student.pos_embed.add_(torch.randn_like(student.pos_embed) * 0.3)
    folder = small_model.parent / "tiny-28px-student"
    sha = L.save_delta(L.delta_state(student, full=["pos_embed"]), folder)
    (folder / "config.json").write_text(json.dumps(
        {"kind": "lora", "base": "tiny-28px", "base_model_id": "tiny-28px", "lora": {"rank": 2, "alpha": 2.0},
         "sha256": sha}))
    model = R.create_model("tiny-28px-student")
    assert model.data_config["input_size"] == (3, 28, 28)  # the input size's preprocessing, inherited
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.module(x), student(x), rtol=1e-2, atol=1e-3)  # fp16 delta
        assert not torch.allclose(model.module(x), R.create_model("tiny-28px").module(x), atol=1e-3)
