"""The pose pipeline, built once (lazily or at start-up) behind a lock; photos that arrive together run as one
batch on a worker thread of their own, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from common.lazy import BatchedModel
from services.pose.pipeline import PosePipeline


class PipelineCache(BatchedModel[PosePipeline, Image.Image, dict]):
    def __init__(self, factory: Callable[[], PosePipeline], *, max_batch_size: int = 8, max_wait_s: float = 0.005,
                 max_queue: int = 64, timeout_s: float = 30.0, replicas: int = 1,
                 torch_threads: int | None = None) -> None:
        super().__init__(factory, "pose", lambda pipeline, images: pipeline.run_batch(images),
                         max_batch_size=max_batch_size, max_wait_s=max_wait_s, max_queue=max_queue,
                         timeout_s=timeout_s, replicas=replicas, torch_threads=torch_threads)

    async def run(self, image: Image.Image) -> dict:
        return (await self.submit([image]))[0]
