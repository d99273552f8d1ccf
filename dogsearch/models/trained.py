"""Trained models: a folder ``models/<model-id>/`` whose ``config.json`` names its base model, built through the
registry (``build_backbone``), and what was trained on it: a head on the base's embedding (``"kind": "head"``,
``heads.py``), a LoRA delta merged into the base's weights (``"kind": "lora"``, ``lora.py``), the base fused
with the ImageNet CNN's features and breed probabilities (``"kind": "fusion"``, ``fusion.py``), or a ViT base run at
a smaller input (``"kind": "input-size"``, ``{"input-size": {"size": 196}}``: fewer patches, other vectors; no
weights of its own), or a ViT base that merges tokens in its blocks (``"kind": "tome"``, ``{"tome": {"r": 16}}``:
``tome.py``, fewer tokens inside, other vectors; no weights of its own).

Any name with such a folder is a model (the default, ``DEFAULT_MODEL``, is one); names registered by a family
come first.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from torch import nn

from dogsearch.models import fusion as FU
from dogsearch.models import heads as H
from dogsearch.models import lora as L
from dogsearch.models import tome as T
from dogsearch.models.dinov2 import with_input_size
from dogsearch.models.registry import MODELS, Backbone, BuildArgs, build_backbone
from dogsearch.models.weights import WeightsError


def trained_names() -> list[str]:
    """The trained embedding models in models/ (folders whose config.json is one; the pose model's is not)."""
    names = []
    for config in sorted(H.MODELS_DIR.glob(f"*/{H.CONFIG_FILE}")):
        try:
            H.read_config(config.parent)
        except WeightsError:
            continue
        names.append(config.parent.name)
    return names


@MODELS.register_fallback(10, names=trained_names)
def find_trained(name: str) -> Callable[[BuildArgs], Backbone] | None:
    folder = H.find(name)
    return None if folder is None else functools.partial(build_trained, folder)


def build_trained(folder: Path, args: BuildArgs) -> Backbone:
    name = args.name
    if args.weights_path is not None or args.num_classes:
        raise ValueError(f"{name!r} is a trained model: it takes no weights_path or classifier")
    config = H.read_config(folder)
    base, base_id, data_config = build_backbone(config["base"], cache_dir=args.cache_dir)
    if config.get("base_model_id", base_id) != base_id:  # a delta fits only the weights it was trained on
        raise WeightsError(f"{name!r} was trained on {config['base_model_id']}, but {config['base']!r} "
                           f"is now {base_id}")
    pinned = config.get("base_sha256")  # a delta on another trained model fits only that model's own delta
    if pinned is not None and (now := delta_sha256(config["base"])) != pinned:
        raise WeightsError(f"{name!r} was trained on {config['base']!r} with delta sha256 {pinned}, but that "
                           f"model's delta is now {now}")
    module = _ON_BASE[config["kind"]](folder, config, base, data_config, args)
    if config["kind"] == "input-size":  # the same crop of the photo (crop_pct), at fewer pixels
        size = config["input-size"]["size"]
        data_config = {**data_config, "input_size": (data_config["input_size"][0], size, size)}
    return Backbone(module.eval(), name, data_config)


def delta_sha256(name: str) -> str | None:
    """The checksum a trained model's config pins for its delta (None for a model without a folder)."""
    folder = H.find(name)
    return None if folder is None else H.read_config(folder).get("sha256")


def _merge_lora(folder: Path, config: dict, base: nn.Module, data_config: dict, args: BuildArgs) -> nn.Module:
    L.merge_delta(base, *L.load_delta(folder, config))
    return base


def _add_head(folder: Path, config: dict, base: nn.Module, data_config: dict, args: BuildArgs) -> nn.Module:
    return H.HeadedBackbone(base, H.load_head(folder))


def _fuse(folder: Path, config: dict, base: nn.Module, data_config: dict, args: BuildArgs) -> nn.Module:
    return FU.build_fused(folder, config, base, data_config, args.cache_dir)


def _resize(folder: Path, config: dict, base: nn.Module, data_config: dict, args: BuildArgs) -> nn.Module:
    size = config["input-size"].get("size")
    if not isinstance(size, int) or not hasattr(base, "patch_embed"):
        raise WeightsError(f"{folder.name!r}: kind 'input-size' needs an integer 'size' and a ViT base")
    try:
        return with_input_size(base, size)
    except ValueError as exc:
        raise WeightsError(f"{folder.name!r}: {exc}") from exc


def _merge_tokens(folder: Path, config: dict, base: nn.Module, data_config: dict, args: BuildArgs) -> nn.Module:
    r = config["tome"].get("r")
    if not isinstance(r, int) or isinstance(r, bool):
        raise WeightsError(f"{folder.name!r}: kind 'tome' needs an integer 'r' (tokens merged a block)")
    try:
        return T.with_token_merging(base, r)
    except ValueError as exc:
        raise WeightsError(f"{folder.name!r}: {exc}") from exc


# what a config's "kind" puts on the base (heads.read_config accepts these kinds)
_ON_BASE = {"head": _add_head, "lora": _merge_lora, "fusion": _fuse, "input-size": _resize, "tome": _merge_tokens}
