"""The pose pipeline, built once (lazily or at start-up) behind a lock; photos that arrive together run as one
batch on a worker thread of their own, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

from dogsearch.inference.runner import BatchedModel
from dogsearch.pose.pipeline import PosePipeline


class PipelineCache(BatchedModel[PosePipeline, Image.Image, dict]):
    def __init__(self, factory: Callable[[], PosePipeline], **batching: Any) -> None:
        """`batching`: PoseSettings.batching()."""
        super().__init__(factory, "pose", lambda pipeline, images: pipeline.run_batch(images),
                         unavailable="pose model unavailable", **batching)

    async def run(self, image: Image.Image) -> dict:
        return (await self.submit([image]))[0]
