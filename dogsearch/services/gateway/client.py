"""Python client of the gateway's public API (used by the CLI; handy for scripts)."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from dogsearch.services.http import ServiceClient


class GatewayClient(ServiceClient):
    service = "gateway"

    async def add_dog(self, image: bytes, filename: str = "photo", **fields: Any) -> tuple[int, dict]:
        """Returns (status, dog): 201 when added, 200 when this photo was already stored."""
        data = {k: str(v) for k, v in fields.items() if v is not None}
        response = await self.request("POST", "/v1/dogs", files={"image": (filename, image)}, data=data)
        return response.status_code, response.json()

    async def search(self, image: bytes, k: int = 10, filter: Mapping[str, Any] | None = None) -> dict:
        data = {"k": str(k)}
        if filter:
            data["filter"] = json.dumps(filter)
        return (await self.request("POST", "/v1/search", files={"image": ("query", image)}, data=data)).json()

    async def dogs(self, limit: int = 20, cursor: str | None = None) -> dict:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return (await self.request("GET", "/v1/dogs", params=params)).json()
