"""The embedding model, built once (lazily or at start-up) behind a lock; inference batched dynamically on one
worker thread per replica, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dogsearch.inference.runner import BatchedModel
from dogsearch.models.embedding import EmbeddingModel


def _embed_batch(model: EmbeddingModel, tensors: list[torch.Tensor]) -> list[np.ndarray]:
    return list(model.embed(torch.stack(tensors)))


class ModelCache(BatchedModel[EmbeddingModel, torch.Tensor, np.ndarray]):
    """Requests bring tensors made with `EmbeddingModel.preprocess` on their own threads: the inference threads
    only run the forward, so preprocessing one request overlaps the forwards of others."""

    def __init__(self, factory: Callable[[], EmbeddingModel], **batching: Any) -> None:
        """`batching`: EmbedderSettings.batching()."""
        super().__init__(factory, "embedder", _embed_batch, **batching)

    async def embed(self, tensors: Sequence[torch.Tensor]) -> np.ndarray:
        return np.stack(await self.submit(tensors))
