"""A tiny deterministic stand-in for the embedding model: unit tests need speed, not accuracy."""
from __future__ import annotations

import threading

import numpy as np
import torch
from PIL import Image


class ColorGridModel:
    """Mean colour of each cell of a 4x4 grid, centred and L2-normalised: same picture, same vector;
    pictures of similar colours, similar vectors."""

    model_id = "test-color-grid"
    dim = 48
    data_config = {"input_size": (3, 4, 4), "mean": (0.5, 0.5, 0.5), "std": (1.0, 1.0, 1.0)}
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.calls = 0
        self._calls_lock = threading.Lock()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        small = image.convert("RGB").resize((4, 4), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1) - 0.5

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        with self._calls_lock:
            self.calls += 1
        flat = batch.reshape(batch.shape[0], -1).numpy().astype(np.float32)
        flat = flat + 1e-3  # a mid-grey picture would otherwise be the zero vector
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    def embed_images(self, images) -> np.ndarray:
        return self.embed(torch.stack([self.preprocess(im) for im in images]))
