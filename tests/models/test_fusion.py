"""Fusion models (kind "fusion"): the ViT's vector next to the ImageNet CNN's parts, built by name from the
registry's real weights; the CNN inside sees exactly what it sees alone."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dogsearch.models import fusion as FU
from dogsearch.models import heads as H
from dogsearch.models import registry as R
from dogsearch.models.dogclass import BREED_CLASSES, DogClassifier
from dogsearch.models.weights import WeightsError

PHOTO = Path(__file__).parents[1] / "fixtures" / "dogs" / "n02088364" / "ILSVRC2012_val_00005922.jpg"
VIT = "vit_small_dinov2-lora-dogs-v1"


def _fusion_folder(root: Path, weights: dict, name: str = "test-fusion") -> Path:
    (root / VIT).symlink_to(H.MODELS_DIR / VIT)  # the base, a trained model itself, beside the fusion
    folder = root / name
    folder.mkdir()
    config = {"kind": "fusion", "base": VIT, "base_model_id": VIT,
              "fusion": {"weights": weights, "cnn_model_id": "tf_efficientnet_lite0.imagenet-pkg"}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_breed_root_probabilities_are_unit_vectors():
    logits = torch.randn(3, 1000)
    roots = FU.breed_root_probs(logits)
    assert roots.shape == (3, 119)
    torch.testing.assert_close(roots.norm(dim=1), torch.ones(3))


@pytest.mark.real_model
def test_a_fusion_builds_by_name_and_its_parts_are_the_two_networks(tmp_path, monkeypatch):
    _fusion_folder(tmp_path, {"vit": 1.0, "breeds": 0.75})
    monkeypatch.setattr(H, "MODELS_DIR", tmp_path)
    model = R.create_model("test-fusion")
    assert model.model_id == "test-fusion" and model.dim == 384 + 119
    with Image.open(PHOTO) as im:
        photo = im.convert("RGB")
    vector = model.embed(model.preprocess(photo))[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # [v, 0.75 * sqrt(p)] / |.| = [0.8 v, 0.6 sqrt(p)]: the ViT's own vector and the classifier's breeds
    vit = R.create_model(VIT)
    np.testing.assert_allclose(vector[:384], 0.8 * vit.embed(vit.preprocess(photo))[0], atol=1e-4)
    probs = DogClassifier().probabilities([photo])[0][list(BREED_CLASSES)]
    np.testing.assert_allclose(vector[384:], 0.6 * np.sqrt(probs / probs.sum()), atol=2e-3)


@pytest.mark.real_model
def test_a_projection_shrinks_the_vector_and_is_checksum_verified(tmp_path, monkeypatch):
    folder = _fusion_folder(tmp_path, {"vit": 1.0, "cnn": 0.5, "breeds": 0.5})
    monkeypatch.setattr(H, "MODELS_DIR", tmp_path)
    config = json.loads((folder / "config.json").read_text())
    layer = torch.nn.Linear(384 + 1280 + 119, 64, bias=False)
    config["fusion"]["projection"] = FU.save_projection(layer, folder)
    (folder / "config.json").write_text(json.dumps(config))
    model = R.create_model("test-fusion")
    vectors = model.embed(torch.randint(0, 256, (2, 3, 224, 224), dtype=torch.uint8))
    assert vectors.shape == (2, 64)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    (folder / FU.PROJECTION_FILE).write_bytes((folder / FU.PROJECTION_FILE).read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsError, match="checksum"):
        R.create_model("test-fusion")


def test_bad_fusion_weights_are_refused():
    with pytest.raises(ValueError, match="fusion weights"):
        FU.FusedBackbone(torch.nn.Identity(), torch.nn.Identity(), vit_norm=((0,) * 3, (1,) * 3),
                         cnn_norm=((0,) * 3, (1,) * 3), weights={"vit": 1.0, "colour": 1.0})


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["vit_small_dinov2-lora-dogs-v1-lite0-breeds",
                                  "vit_small_dinov2-lora-dogs-v3-lite0-breeds"])
def test_the_shipped_fusion_builds_by_name_with_its_documented_size(name):
    # models/<name>/MODEL_CARD.md: 503-d, breeds weight 0.2
    assert name in R.list_models()
    config = H.read_config(H.find(name))
    assert config["kind"] == "fusion" and config["fusion"]["weights"] == {"vit": 1.0, "breeds": 0.2}
    model = R.create_model(name)
    assert model.model_id == name and model.dim == 503
    with Image.open(PHOTO) as im:
        vectors = model.embed(torch.stack([model.preprocess(im), model.preprocess(im.transpose(0))]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.real_model
def test_the_body_fusion_builds_its_projection_to_384_and_has_its_own_calibration():
    name = "vit_small_dinov2-lora-dogs-v1-lite0-bodies"  # models/<it>/MODEL_CARD.md: projected to 384-d
    config = H.read_config(H.find(name))
    assert config["fusion"]["weights"] == {"vit": 1.0, "cnn": 0.25, "breeds": 0.2}
    model = R.create_model(name)
    assert model.model_id == name and model.dim == 384
    with Image.open(PHOTO) as im:
        vectors = model.embed(torch.stack([model.preprocess(im), model.preprocess(im.transpose(0))]))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.8  # a photo and its mirror image: one dog
    calibration = json.loads((H.find(name) / "calibration.json").read_text())
    assert calibration["vectors"] == f"{name}@dogcrop-m0.3"  # fit on its own vectors, not the default's


@pytest.mark.real_model
def test_the_v3_breed_fusion_is_its_base_vector_with_the_breed_part_beside_it():
    name = "vit_small_dinov2-lora-dogs-v3-lite0-breeds"
    fused, base = R.create_model(name), R.create_model("vit_small_dinov2-lora-dogs-v3")
    with Image.open(PHOTO) as im:
        v = fused.embed(fused.preprocess(im)[None])[0]
        b = base.embed(base.preprocess(im)[None])[0]
    vit, breeds = v[:base.dim], v[base.dim:]
    assert float(vit @ b) / float(np.linalg.norm(vit)) > 0.9999  # the ViT part is v3's vector, scaled
    assert np.linalg.norm(breeds) / np.linalg.norm(vit) == pytest.approx(0.2, abs=1e-4)  # sqrt(p) is a unit vector
    assert (breeds >= 0).all()
    # judged by that part with v3's own map (docs/embedder-eval.md, "Ranked by the fusion, judged by its ViT part")
    calibration = json.loads((H.find(name) / "calibration.json").read_text())
    v3 = json.loads((H.find("vit_small_dinov2-lora-dogs-v3") / "calibration.json").read_text())
    assert calibration["vectors"] == f"{name}@dogcrop-m0.3"
    assert calibration["part"] == FU.vit_part(H.read_config(H.find(name)), fused.dim) == {
        "dims": base.dim, "scale": 1.0198039, "rerank": {"weight": 0.75, "cap": 0.4, "depth": 100}}
    assert np.linalg.norm(vit) * calibration["part"]["scale"] == pytest.approx(1.0, abs=1e-5)
    assert (calibration["params"], calibration["first"]) == (v3["params"], v3["first"])
    assert calibration["judged_by"] == {"vectors": v3["vectors"], "sha256": v3["sha256"]}


def test_a_fusion_s_vit_part_lies_first_and_a_projected_one_has_none():
    config = {"kind": "fusion", "fusion": {"weights": {"vit": 2.0, "cnn": 1.0, "breeds": 2.0}}}
    assert FU.vit_part(config, 384 + 1280 + 119) == {"dims": 384, "scale": 1.5}  # sqrt(4 + 1 + 4) / 2
    with pytest.raises(ValueError, match="unprojected"):
        FU.vit_part({**config, "fusion": {**config["fusion"], "projection": {"out_dim": 384}}}, 384)
