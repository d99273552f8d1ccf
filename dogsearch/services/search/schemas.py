from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dogsearch.search.contract import IndexKind
from dogsearch.search.order import MAX_TOKEN, ORDER_BY

Scalar = str | int | bool


class Near(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(..., description="the centre's latitude, degrees")
    lon: float = Field(..., description="the centre's longitude, degrees")
    radius_km: float = Field(..., description="kilometres around it, on the sphere")


class Operator(BaseModel):
    """A field's value that is an object: `{"$near": {"lat", "lon", "radius_km"}}` (a geo point within so many km)
    or `{"$gte": .., "$lte": ..}` (a date and time in that range, ISO 8601, ends included)."""

    model_config = ConfigDict(extra="forbid")

    near: Near | None = Field(None, alias="$near")
    gte: str | None = Field(None, alias="$gte", max_length=64)
    lte: str | None = Field(None, alias="$lte", max_length=64)


class Conditions(BaseModel):
    """Field -> value (equals), field -> list of values (any of), or field -> an operator (`$near`, `$gte`/`$lte`),
    ANDed; `$empty`: fields that are missing, null or an empty list. Read by dogsearch.search.filters.parse_filter,
    which says what is wrong with one."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Scalar | list[Scalar] | Operator] = Field(init=False)

    empty: list[str] | None = Field(None, alias="$empty", description="fields that are missing, null or []")


class Filter(Conditions):
    """Conditions, and `$not`: conditions a point must match none of, e.g.
    `{"breed": ["pug", "beagle"], "$not": {"color": "black"}, "$empty": ["name"]}`."""

    not_: Conditions | None = Field(None, alias="$not", description="leave out the points matching any of these")


def filter_spec(flt: Filter | None) -> dict[str, Any] | None:
    """The JSON form of a request's filter, for the store."""
    return None if flt is None else flt.model_dump(by_alias=True, exclude_none=True)


class CollectionSpec(BaseModel):
    dim: int = Field(..., ge=1, le=65536)
    model: str = Field(..., min_length=1, max_length=200)
    indexes: dict[str, IndexKind] = Field(default_factory=dict, max_length=100,
                                          description="payload indexes to build (field -> kind), if missing")


# Readiness asks GET /v1/collection every few seconds: an exact count walks every point, holding the embedded engine
# (and the GIL) for it, which grows with the gallery (docs/operations.md, "Health, readiness, metrics").
COUNT = ("count the points too (exact: a pass over every one of them); false: dim and model alone, from the "
         "collection's metadata, at a cost that does not grow with the collection")


class CollectionInfo(BaseModel):
    dim: int
    model: str
    count: int | None = Field(None, description="the points it holds; absent when asked with count=false")


class PointIn(BaseModel):
    id: str = Field(..., min_length=1, max_length=64)
    vector: list[float] | str = Field(..., description="numbers, or the base64 of little-endian float32 values "
                                                       "(compact: what the bundled clients send)")
    payload: dict[str, Any] = Field(default_factory=dict)


class UpsertRequest(BaseModel):
    points: list[PointIn] = Field(..., min_length=1, max_length=10_000)


class PointOut(BaseModel):
    id: str
    payload: dict[str, Any]
    vector: list[float] | None = None


class LookupRequest(BaseModel):
    ids: list[str] = Field(..., max_length=10_000)
    with_vector: bool = False


class SetPayloadRequest(BaseModel):
    ids: list[str] = Field(..., max_length=10_000)
    payload: dict[str, Any] = Field(..., description="keys merged into each point's payload")


class LookupResponse(BaseModel):
    points: list[PointOut]  # the stored ones among the ids asked for, in no particular order


class Hit(BaseModel):
    id: str
    score: float
    payload: dict[str, Any]


class QueryRequest(BaseModel):
    vector: list[float]
    k: int = Field(10, ge=1)
    filter: Filter | None = None
    exclude: list[str] = Field(default_factory=list)


class SimilarRequest(BaseModel):
    k: int = Field(10, ge=1)
    filter: Filter | None = None


class ScrollRequest(BaseModel):
    limit: int = Field(20, ge=1, le=1000)
    offset: str | None = Field(None, max_length=MAX_TOKEN, description="an id; with `order_by`, a page's `next`")
    filter: Filter | None = None
    order_by: str | None = Field(None, pattern=ORDER_BY.pattern,
                                 description='a datetime field with an index: "field" the oldest first, "-field" '
                                             'the newest')


class ScrollResponse(BaseModel):
    points: list[PointOut]
    next: str | None


class CountRequest(BaseModel):
    filter: Filter | None = None


class Hits(BaseModel):
    hits: list[Hit]
