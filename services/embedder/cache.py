"""The embedding model, built once (lazily or at start-up) behind a lock; inference on one worker thread."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from services.embedder.model import EmbeddingModel

log = logging.getLogger("dogsearch.embedder")


class ModelCache:
    def __init__(self, factory: Callable[[], EmbeddingModel]) -> None:
        self._factory = factory
        self._model: EmbeddingModel | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()
        # One inference thread: torch already spreads one forward over the cores, and two concurrent
        # forwards would only fight over them. Requests are never blocked on the event loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed")

    @property
    def loaded(self) -> EmbeddingModel | None:
        return self._model

    @property
    def error(self) -> Exception | None:
        return self._error

    def get(self) -> EmbeddingModel:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    start = time.perf_counter()
                    try:
                        self._model = self._factory()
                    except Exception as exc:
                        self._error = exc
                        raise
                    self._error = None
                    log.info("model loaded", extra={"model": self._model.model_id, "dim": self._model.dim,
                                                    "seconds": round(time.perf_counter() - start, 2)})
        return self._model

    async def aget(self) -> EmbeddingModel:
        if self._model is not None:
            return self._model
        return await asyncio.get_running_loop().run_in_executor(None, self.get)

    async def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        model = await self.aget()
        loop = asyncio.get_running_loop()
        # Preprocessing (resize, normalise) runs on the default pool, in parallel with other requests' forwards.
        batch = await loop.run_in_executor(None, lambda: _stack([model.preprocess(im) for im in images]))
        return await loop.run_in_executor(self._executor, model.embed, batch)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors)
