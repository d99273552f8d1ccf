"""The embedding model, built once (lazily or at start-up) behind a lock; inference batched dynamically on one
worker thread, never on the event loop."""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from common.batching import DynamicBatcher
from common.lazy import LazyModel
from services.embedder.model import EmbeddingModel


class ModelCache(LazyModel[EmbeddingModel]):
    def __init__(self, factory: Callable[[], EmbeddingModel], *, max_batch_size: int = 32, max_wait_s: float = 0.005,
                 max_queue: int = 512, timeout_s: float = 30.0) -> None:
        super().__init__(factory, "embedder")
        # One inference thread: torch already spreads one forward over the cores, and two concurrent
        # forwards would only fight over them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")
        self.batcher: DynamicBatcher[torch.Tensor, np.ndarray] = DynamicBatcher(
            self._forward, name="embedder", max_batch_size=max_batch_size, max_wait_s=max_wait_s,
            max_queue=max_queue, timeout_s=timeout_s, executor=self._executor,
        )

    async def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        model = await self.aget()
        # Preprocessing (resize, normalise) runs on the default pool, beside the forward of other requests.
        tensors = await asyncio.to_thread(lambda: [model.preprocess(im) for im in images])
        return np.stack(await self.batcher.submit(tensors))

    def _forward(self, tensors: list[torch.Tensor]) -> np.ndarray:
        return self.get().embed(torch.stack(tensors))

    async def aclose(self) -> None:
        await self.batcher.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
