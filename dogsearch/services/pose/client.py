"""Python client of the pose service's HTTP API."""
from __future__ import annotations

from collections.abc import Sequence

from dogsearch.core.boxes import Box, box_text
from dogsearch.services.http import ServiceClient


class PoseClient(ServiceClient):
    service = "pose"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def pose(self, image: bytes, boxes: Sequence[Box] = ()) -> dict:
        """A photo's bytes -> the pose JSON (model, width, height, dogs); `boxes`: pose those dogs (in the photo's
        pixels), without the detector (none: the service finds them, and refuses a photo without one: NoDogFound)."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, data=_boxes(boxes))).json()

    async def render(self, image: bytes, boxes: Sequence[Box] = ()) -> bytes:
        """A photo's bytes -> PNG of the photo with boxes and skeletons drawn."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, params={"render": "true"},
                                   data=_boxes(boxes))).content


def _boxes(boxes: Sequence[Box]) -> dict | None:
    return {"box": [box_text(box) for box in boxes]} if boxes else None
