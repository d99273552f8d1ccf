"""Python client of the search service's HTTP API."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dogsearch.core.vectors import encode_f32
from dogsearch.search import contract  # noqa: F401  (its errors: an answer's code names one, raised again here)
from dogsearch.services.http import ServiceClient


class SearchClient(ServiceClient):
    service = "search"

    async def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, str] | None = None) -> dict:
        """Creates the collection or checks it; ``indexes`` ({field: "keyword", ...}): payload indexes to build if
        missing."""
        body: dict[str, Any] = {"dim": dim, "model": model}
        if indexes:
            body["indexes"] = dict(indexes)
        return (await self.request("PUT", "/v1/collection", json=body)).json()

    async def collection(self) -> dict:
        """{"dim", "model"}: no count, which would walk every point (readiness asks this each probe)."""
        return (await self.request("GET", "/v1/collection", params={"count": "false"})).json()

    async def upsert(self, points: Sequence[Mapping[str, Any]]) -> None:
        """Points as {"id", "vector", "payload"}; numpy vectors travel as base64 float32."""
        body = [{**p, "vector": encode_f32(p["vector"])} if isinstance(p["vector"], np.ndarray) else dict(p)
                for p in points]
        await self.request("PUT", "/v1/points", json={"points": body})

    async def get(self, point_id: str) -> dict:
        return (await self.request("GET", f"/v1/points/{point_id}")).json()

    async def lookup(self, point_ids: Sequence[str], with_vector: bool = False) -> dict[str, dict]:
        """{id: point} for the stored ones among `point_ids` (with its "vector" if asked)."""
        body = {"ids": list(point_ids), "with_vector": with_vector}
        points = (await self.request("POST", "/v1/points/lookup", json=body)).json()["points"]
        return {p["id"]: p for p in points}

    async def set_payload(self, point_ids: Sequence[str], payload: Mapping[str, Any]) -> dict:
        """Merges ``payload``'s keys into each point's payload; PointNotFound (nothing changed) for an unknown id."""
        body = {"ids": list(point_ids), "payload": dict(payload)}
        return (await self.request("POST", "/v1/points/payload", json=body)).json()

    async def delete(self, point_id: str) -> None:
        await self.request("DELETE", f"/v1/points/{point_id}")

    async def scroll(self, limit: int, offset: str | None = None, filter: Mapping | None = None,
                     order_by: str | None = None) -> dict:
        body = {"limit": limit, "offset": offset, "filter": filter, "order_by": order_by}
        return (await self.request("POST", "/v1/points/scroll", json=body)).json()

    async def count(self, filter: Mapping | None = None) -> int:
        return (await self.request("POST", "/v1/points/count", json={"filter": filter})).json()["count"]

    async def query(self, vector: Sequence[float], k: int, filter: Mapping | None = None) -> list[dict]:
        body = {"vector": list(map(float, vector)), "k": k, "filter": filter}
        return (await self.request("POST", "/v1/query", json=body)).json()["hits"]

    async def similar(self, point_id: str, k: int, filter: Mapping | None = None) -> list[dict]:
        body = {"k": k, "filter": filter}
        return (await self.request("POST", f"/v1/points/{point_id}/similar", json=body)).json()["hits"]

    async def optimize(self) -> None:
        await self.request("POST", "/v1/optimize", timeout=600.0)
