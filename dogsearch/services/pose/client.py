"""Python client of the pose service's HTTP API."""
from __future__ import annotations

from dogsearch.core.boxes import Box, box_text
from dogsearch.services.http import ServiceClient


class PoseClient(ServiceClient):
    service = "pose"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def pose(self, image: bytes, box: Box | None = None) -> dict:
        """A photo's bytes -> the pose JSON (model, width, height, dogs); `box`: pose that dog alone (in the photo's
        pixels), without the detector."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, data=_box(box))).json()

    async def render(self, image: bytes, box: Box | None = None) -> bytes:
        """A photo's bytes -> PNG of the photo with boxes and skeletons drawn."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, params={"render": "true"},
                                   data=_box(box))).content


def _box(box: Box | None) -> dict | None:
    return None if box is None else {"box": box_text(box)}
