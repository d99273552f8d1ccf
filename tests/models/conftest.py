from __future__ import annotations

import json

import pytest

from dogsearch.models import heads as H
from dogsearch.models import registry as R


@pytest.fixture
def register_model():
    """``@register_model(name)`` as the model families use it, the names removed from the registry afterwards."""
    added: list[str] = []

    def register(name: str, **options):
        def decorator(builder):
            R.register_model(name, **options)(builder)
            added.append(name)
            return builder

        return decorator

    yield register
    for name in added:
        R.MODELS.remove(name)


@pytest.fixture
def model_on_base(tmp_path, monkeypatch, register_model):
    """``model_on_base(name, config, base_module, data_config)``: a model folder ``name`` under a models dir of
    its own, its config.json ``config`` over a base registered as "tiny-base" (a fresh ``base_module()`` each build)."""
    def make(name: str, config: dict, base_module, data_config: dict):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"base": "tiny-base", **config}))
        monkeypatch.setattr(H, "MODELS_DIR", tmp_path)

        @register_model("tiny-base")
        def tiny_base(args: R.BuildArgs) -> R.Backbone:
            return R.Backbone(base_module(), "tiny-base", dict(data_config))

        return folder

    return make
