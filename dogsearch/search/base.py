"""What the engines share: the checks of what callers pass in (names, ids, vectors, payloads, collection specs), and
the reads every store answers the same way from its own retrieve() and query() (get, similar)."""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dogsearch.search.contract import (
    INDEX_KINDS,
    Hit,
    IndexKind,
    InvalidStoreInput,
    Point,
    PointNotFound,
)

if TYPE_CHECKING:
    from dogsearch.search.filters import FilterSpec  # filters.py imports this module

COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_collection_name(name: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
        raise InvalidStoreInput(f"collection name must match {COLLECTION_NAME.pattern}: {name!r}")
    return name


def point_id(id: str) -> str:
    # The engines take UUIDs or unsigned ints and reject other strings; this API speaks UUID strings only.
    try:
        return str(uuid.UUID(str(id)))
    except ValueError:
        raise InvalidStoreInput(f"point id must be a UUID string, got {id!r}") from None


def point_ids(ids: Sequence[str]) -> list[str]:
    if isinstance(ids, str):
        raise InvalidStoreInput(f"a list of point ids, got {ids!r}")
    return [point_id(i) for i in ids]


def clean_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip keeps the stored payload what a Qdrant server would store (the embedded engine
    # itself would turn bytes into lists of ints, say) and fails early on what JSON can't hold.
    if not isinstance(payload, Mapping):
        raise InvalidStoreInput(f"a payload is an object, got {type(payload).__name__}")
    try:
        return json.loads(json.dumps(dict(payload), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidStoreInput(f"payload is not JSON: {exc}") from None


def check_vector(vector: Sequence[float] | None, dim: int) -> list[float]:
    try:
        array = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidStoreInput(f"vector is not a list of numbers: {exc}") from None
    if array.shape != (dim,):
        raise InvalidStoreInput(f"vector must have {dim} numbers, got shape {array.shape}")
    # The engines accept NaN and zero vectors, and then score them as 0 against everything.
    if not np.isfinite(array).all() or not array.any():
        raise InvalidStoreInput("vector must be finite and not all zeros")
    return array.tolist()


def check_at_least_one(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidStoreInput(f"{name} must be an int >= 1, got {value!r}")
    return value


def check_spec(dim: int, model: str, indexes: Mapping[str, IndexKind]) -> dict[str, IndexKind]:
    """Checks ensure_collection()'s arguments; returns the indexes as a plain dict."""
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise InvalidStoreInput(f"dim must be a positive int, got {dim!r}")
    if not isinstance(model, str) or not model:
        raise InvalidStoreInput("model must be a non-empty string")
    if not isinstance(indexes, Mapping):
        raise InvalidStoreInput(f"indexes: an object of field -> kind, got {type(indexes).__name__}")
    for field, kind in indexes.items():
        if not isinstance(field, str) or not field or field.startswith("$"):
            raise InvalidStoreInput(f"index field must be a non-empty string not starting with '$', got {field!r}")
        if kind not in INDEX_KINDS:
            raise InvalidStoreInput(f"index on {field!r}: kind must be one of {', '.join(INDEX_KINDS)}, got {kind!r}")
    return dict(indexes)


def missing_ids(wanted: Sequence[str], found: Sequence[Point]) -> None:
    """PointNotFound naming the ids of ``wanted`` (canonical) that are not among ``found``."""
    stored = {p.id for p in found}
    absent = [i for i in dict.fromkeys(wanted) if i not in stored]
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise PointNotFound(f"no point {shown}")


class StoreBase:
    """The reads both engines answer alike from their own retrieve() and query(), and the context manager."""

    def get(self, id: str, with_vector: bool = False) -> Point | None:
        found = self.retrieve([id], with_vector)  # type: ignore[attr-defined]
        return found[0] if found else None

    def similar(self, id: str, k: int, filter: FilterSpec = None) -> list[Hit]:
        """More like this: the k points nearest to the stored point ``id``, which is left out; PointNotFound if
        there is none."""
        check_at_least_one("k", k)
        point = self.get(id, with_vector=True)
        if point is None:
            raise PointNotFound(f"no point {id}")
        return self.query(point.vector, k, filter=filter, exclude=[point.id])  # type: ignore[attr-defined]

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
