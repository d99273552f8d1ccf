"""Python client of the embedder's HTTP API."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dogsearch.core.vectors import decode_f32
from dogsearch.services.http import ServiceClient


class EmbedderClient(ServiceClient):
    service = "embedder"

    async def info(self) -> dict:
        return (await self.request("GET", "/v1/info")).json()

    async def embed(self, images: Sequence[bytes]) -> tuple[str, np.ndarray]:
        """Raw image files in; (model id, float32 array of shape (n, dim)) out."""
        files = [("images", (f"{i}", data, "application/octet-stream")) for i, data in enumerate(images)]
        body = (await self.request("POST", "/v1/embed", params={"encoding": "base64"}, files=files)).json()
        return body["model"], np.stack([decode_f32(v) for v in body["vectors"]])
