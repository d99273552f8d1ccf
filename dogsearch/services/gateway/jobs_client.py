"""Python client of the gateway's jobs API."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dogsearch.services.http import ServiceClient


class JobsClient(ServiceClient):
    service = "gateway"

    async def index_path(self, path: str, labels: str | None = None, payload: dict[str, Any] | None = None) -> dict:
        body = {"path": path, "labels": labels, "payload": payload or {}}
        return (await self.request("POST", "/v1/jobs/index", json=body)).json()

    async def index_archive(self, archive: Path, labels: str | None = None,
                            payload: dict[str, Any] | None = None) -> dict:
        data = {k: v for k, v in (("labels", labels), ("payload", json.dumps(payload) if payload else None)) if v}
        with open(archive, "rb") as f:  # httpx streams the file from disk
            files = {"archive": (archive.name, f, "application/zip")}
            return (await self.request("POST", "/v1/jobs/index/upload", files=files, data=data)).json()

    async def get(self, job_id: str) -> dict:
        return (await self.request("GET", f"/v1/jobs/{job_id}")).json()

    async def cancel(self, job_id: str) -> dict:
        return (await self.request("DELETE", f"/v1/jobs/{job_id}")).json()
