"""Python client of the gateway's public API: dogs, search and bulk jobs (used by the CLI and the evaluations;
handy for scripts)."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dogsearch.services.http import ServiceClient


class GatewayClient(ServiceClient):
    service = "gateway"
    callers_key = True  # a user's API key: a 401 is "this needs a key", not the gateway being down

    async def add_dog(self, image: bytes, filename: str = "photo", **fields: Any) -> tuple[int, dict]:
        """Returns (status, dog): 201 when added, 200 when this photo was already stored."""
        data = {k: str(v) for k, v in fields.items() if v is not None}
        response = await self.request("POST", "/v1/dogs", files={"image": (filename, image)}, data=data)
        return response.status_code, response.json()

    async def search(self, image: bytes | Sequence[bytes], k: int = 10,
                     filter: Mapping[str, Any] | None = None) -> dict:
        """`image`: a photo, or several photos of one dog (combined by the gateway's QUERY_COMBINE)."""
        data = {"k": str(k)}
        if filter:
            data["filter"] = json.dumps(filter)
        images = [image] if isinstance(image, bytes) else list(image)
        files = [("image", (f"query{n}", one)) for n, one in enumerate(images)]
        return (await self.request("POST", "/v1/search", files=files, data=data)).json()

    async def dogs(self, limit: int = 20, cursor: str | None = None) -> dict:
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return (await self.request("GET", "/v1/dogs", params=params)).json()

    async def index_path(self, path: str, labels: str | None = None, payload: dict[str, Any] | None = None) -> dict:
        body = {"path": path, "labels": labels, "payload": payload or {}}
        return (await self.request("POST", "/v1/jobs/index", json=body)).json()

    async def index_archive(self, archive: Path, labels: str | None = None,
                            payload: dict[str, Any] | None = None) -> dict:
        data = {k: v for k, v in (("labels", labels), ("payload", json.dumps(payload) if payload else None)) if v}
        with open(archive, "rb") as f:  # httpx streams the file from disk
            files = {"archive": (archive.name, f, "application/zip")}
            return (await self.request("POST", "/v1/jobs/index/upload", files=files, data=data)).json()

    async def jobs(self, limit: int = 50) -> list[dict]:
        return (await self.request("GET", "/v1/jobs", params={"limit": limit})).json()["items"]

    async def job(self, job_id: str) -> dict:
        return (await self.request("GET", f"/v1/jobs/{job_id}")).json()

    async def cancel_job(self, job_id: str) -> dict:
        return (await self.request("DELETE", f"/v1/jobs/{job_id}")).json()
