"""What the gallery needs from the other services. The HTTP clients (dogsearch/services/embedder/client.py,
dogsearch/services/search/client.py) implement these over the network or in-process; their errors are the domain's
(a CollectionMissing when nothing is stored yet, an Unavailable when a service is down)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np


class Embedder(Protocol):
    async def info(self) -> dict[str, Any]:
        """At least {"model": its id, "dim": its vectors' length}."""

    async def embed(self, images: Sequence[bytes]) -> tuple[str, np.ndarray]:
        """Photo files in (each checked and decoded there); (model id, (n, dim) float32 unit rows) out."""


class Index(Protocol):
    """The collection of vectors, as points {"id", "payload"} (and "vector" where given) and hits {"id", "score",
    "payload"}; filters map a field to a value or to a list of values (any of), with "$not" (a filter of the same
    form) and "$empty" (fields without a value) (dogsearch/search/filters.py)."""

    async def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, str] | None = None) -> Any: ...

    async def lookup(self, point_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: point} for the stored ones among `point_ids`."""

    async def upsert(self, points: Sequence[Mapping[str, Any]]) -> None: ...

    async def set_payload(self, point_ids: Sequence[str], payload: Mapping[str, Any]) -> Any:
        """Merges `payload`'s keys into each point's payload."""

    async def delete(self, point_id: str) -> None: ...

    async def scroll(self, limit: int, offset: str | None = None, filter: Mapping | None = None) -> dict[str, Any]:
        """{"points": [...], "next": the offset of the next page or None}."""

    async def count(self, filter: Mapping | None = None) -> int: ...

    async def query(self, vector: Sequence[float], k: int, filter: Mapping | None = None) -> list[dict[str, Any]]: ...

    async def similar(self, point_id: str, k: int, filter: Mapping | None = None) -> list[dict[str, Any]]: ...
