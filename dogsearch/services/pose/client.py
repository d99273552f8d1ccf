"""Python client of the pose service's HTTP API."""
from __future__ import annotations

from collections.abc import Sequence

from dogsearch.core.boxes import Box
from dogsearch.models.detect import Detection
from dogsearch.services.http import ServiceClient
from dogsearch.services.pose.schemas import box_field


class PoseClient(ServiceClient):
    service = "pose"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def pose(self, image: bytes, boxes: Sequence[Box | Detection] = ()) -> dict:
        """A photo's bytes -> the pose JSON (model, width, height, dogs); `boxes`: pose those dogs (in the photo's
        pixels; a Detection: with the score its detector gave it), without the detector (none: the service finds
        them, and refuses a photo without one: NoDogFound)."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, data=_boxes(boxes))).json()

    async def render(self, image: bytes, boxes: Sequence[Box | Detection] = ()) -> bytes:
        """A photo's bytes -> PNG of the photo with boxes and skeletons drawn."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, params={"render": "true"},
                                   data=_boxes(boxes))).content


def _boxes(boxes: Sequence[Box | Detection]) -> dict | None:
    fields = [box_field(b.box, b.score) if isinstance(b, Detection) else box_field(b) for b in boxes]
    return {"box": fields} if fields else None
