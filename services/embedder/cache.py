"""The embedding model, built once (lazily or at start-up) behind a lock; inference batched dynamically on one
worker thread, never on the event loop."""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from common.lazy import BatchedModel
from services.embedder.model import EmbeddingModel


class ModelCache(BatchedModel[EmbeddingModel, torch.Tensor, np.ndarray]):
    def __init__(self, factory: Callable[[], EmbeddingModel], *, max_batch_size: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = 512, timeout_s: float = 30.0) -> None:
        super().__init__(factory, "embedder", lambda model, tensors: model.embed(torch.stack(tensors)),
                         max_batch_size=max_batch_size, max_wait_s=max_wait_s, max_queue=max_queue,
                         timeout_s=timeout_s)

    async def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        model = await self.aget()
        # Preprocessing (resize, normalise) runs on the default pool, beside the forward of other requests.
        tensors = await asyncio.to_thread(lambda: [model.preprocess(im) for im in images])
        return np.stack(await self.submit(tensors))
