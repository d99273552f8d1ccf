"""Python client of the pose service's HTTP API."""
from __future__ import annotations

from dogsearch.services.http import ServiceClient


class PoseClient(ServiceClient):
    service = "pose"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def pose(self, image: bytes) -> dict:
        """A photo's bytes -> the pose JSON (model, width, height, dogs)."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files)).json()

    async def render(self, image: bytes) -> bytes:
        """A photo's bytes -> PNG of the photo with boxes and skeletons drawn."""
        files = {"image": ("image", image, "application/octet-stream")}
        return (await self.request("POST", "/v1/pose", files=files, params={"render": "true"})).content
