"""The pose pipeline, built once (lazily or at start-up) behind a lock; photos that arrive together run as one
batch on one worker thread, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from common.batching import DynamicBatcher
from common.lazy import LazyModel
from services.pose.pipeline import PosePipeline


class PipelineCache(LazyModel[PosePipeline]):
    def __init__(self, factory: Callable[[], PosePipeline], *, max_batch_size: int = 8, max_wait_s: float = 0.005,
                 max_queue: int = 64, timeout_s: float = 30.0) -> None:
        super().__init__(factory, "pose")
        # one inference thread: torch and onnxruntime already spread one forward over the cores
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pose")
        self.batcher: DynamicBatcher[Image.Image, dict] = DynamicBatcher(
            lambda images: self.get().run_batch(images), name="pose", max_batch_size=max_batch_size,
            max_wait_s=max_wait_s, max_queue=max_queue, timeout_s=timeout_s, executor=self._executor,
        )

    async def run(self, image: Image.Image) -> dict:
        await self.aget()
        return (await self.batcher.submit([image]))[0]

    async def aclose(self) -> None:
        await self.batcher.aclose()
        self._executor.shutdown(wait=False, cancel_futures=True)
