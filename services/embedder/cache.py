"""The embedding model, built once (lazily or at start-up) behind a lock; inference batched dynamically on one
worker thread, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from common.lazy import BatchedModel
from services.embedder.model import EmbeddingModel


def _embed_batch(model: EmbeddingModel, images: list[Image.Image]) -> list[np.ndarray]:
    # Preprocessing stays on the inference thread too: its torch ops elsewhere would halve the forward's speed.
    return list(model.embed(torch.stack([model.preprocess(im) for im in images])))


class ModelCache(BatchedModel[EmbeddingModel, Image.Image, np.ndarray]):
    def __init__(self, factory: Callable[[], EmbeddingModel], *, max_batch_size: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = 512, timeout_s: float = 30.0) -> None:
        super().__init__(factory, "embedder", _embed_batch, max_batch_size=max_batch_size, max_wait_s=max_wait_s,
                         max_queue=max_queue, timeout_s=timeout_s)

    async def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        return np.stack(await self.submit(images))
