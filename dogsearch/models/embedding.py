"""An embedding model: a built network plus the preprocessing its vectors depend on (``EmbeddingModel``).

The networks are built by name through ``dogsearch.models.registry`` (``create_model``); every model is built with
``num_classes=0``: its output is the pooled feature vector, which ``EmbeddingModel.embed`` L2-normalises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import timm
import timm.data
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image

from dogsearch.inference.runtimes import Forward, TorchForward

__all__ = ["EmbeddingModel", "pixels", "split_eval_transform", "timm_data_config"]


def pixels(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> its (3, h, w) uint8 tensor (a copy: writable, and free of the image)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))


def split_eval_transform(transform: Any) -> tuple[Callable[[Image.Image], Image.Image], torch.Tensor, torch.Tensor]:
    """timm's eval transform is PIL resizing and cropping, then ToTensor and Normalize: (the PIL part, mean, std),
    mean and std shaped (3, 1, 1)."""
    *resize, to_tensor, normalize = transform.transforms
    if type(to_tensor).__name__ not in ("ToTensor", "MaybeToTensor") or type(normalize).__name__ != "Normalize":
        raise ValueError(f"unexpected eval transform from timm: {transform}")
    mean, std = (torch.as_tensor(v, dtype=torch.float32).reshape(3, 1, 1) for v in (normalize.mean, normalize.std))
    return T.Compose(resize), mean, std


class EmbeddingModel:
    """A built, eval-mode network plus the preprocessing its vectors depend on. ``forward`` runs the network (on
    another runtime than torch: ``dogsearch.inference.runtimes``); by default the torch ``module`` itself, which is
    otherwise only read for its width and not kept (its weights live in the runtime)."""

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        model_id: str,
        data_config: dict,
        device: torch.device,
        precision: str = "fp32",
        forward: Forward | None = None,
    ) -> None:
        self.forward = forward or TorchForward(module, device, precision)
        self.module = module.eval() if forward is None else None
        self.model_id = model_id
        self.dim = int(getattr(module, "head_hidden_size", None) or module.num_features)
        self.data_config = dict(data_config)
        self.device = device
        self.precision = precision
        self._resize, mean, std = split_eval_transform(
            timm.data.create_transform(**self.data_config, is_training=False))
        # Photos may be decoded shrunk (dogsearch.core.images.decode_image's min_side) down to twice the side timm's
        # transform resizes to: the resize then still averages at least 2x2 source pixels into each of its pixels.
        _, height, width = self.data_config["input_size"]
        self.decode_side = 2 * math.floor(max(height, width) / self.data_config.get("crop_pct", 1.0))
        self._mean, self._std = mean.to(device), std.to(device)

    def __repr__(self) -> str:
        return (
            f"EmbeddingModel(model_id={self.model_id!r}, dim={self.dim}, "
            f"device={str(self.device)!r}, precision={self.precision!r}, runtime={self.runtime!r})"
        )

    @property
    def runtime(self) -> str:
        return self.forward.runtime

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """PIL image -> CHW uint8 tensor, resized and centre-cropped as timm's eval transform does; `embed`
        normalises it. Thread-safe and cheap (no float work): callers run it off the inference thread, and the
        batch is scaled in one vectorised step there (4x less to move to a GPU, too)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return pixels(self._resize(image))

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
            feats = self.forward(self.normalize(batch))
            return F.normalize(feats.float().flatten(1), dim=1).cpu().numpy()

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


def timm_data_config(module: torch.nn.Module) -> dict:
    """The preprocessing timm resolves for ``module`` (its pretrained config), lists made tuples."""
    cfg = timm.data.resolve_data_config({}, model=module)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()}
