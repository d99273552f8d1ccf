"""The pose pipeline, built once (lazily or at start-up) behind a lock; photos that arrive together run as one
batch on a worker thread of their own, never on the event loop."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from dogsearch.core.boxes import Box
from dogsearch.inference.runner import BatchedModel
from dogsearch.models.detect import Detection
from dogsearch.pose.pipeline import PosePipeline

# a photo, and the boxes of the dogs to pose (a Detection: with its detector's score; none: the detector's dogs)
Item = tuple[Image.Image, Sequence[Box | Detection]]


class PipelineCache(BatchedModel[PosePipeline, Item, dict]):
    def __init__(self, factory: Callable[[], PosePipeline], **batching: Any) -> None:
        """`batching`: PoseSettings.batching()."""
        super().__init__(factory, "pose", lambda pipeline, items: pipeline.run_batch([i for i, _ in items],
                                                                                     [b for _, b in items]),
                         unavailable="pose model unavailable", **batching)

    async def run(self, image: Image.Image, boxes: Sequence[Box | Detection] = ()) -> dict:
        return (await self.submit([(image, boxes)]))[0]
