from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dogsearch.search.contract import IndexKind

# Filters: field -> value (equals) or field -> list of values (any of); fields are ANDed.
Filter = dict[str, str | int | bool | list[str | int | bool]]


class CollectionSpec(BaseModel):
    dim: int = Field(..., ge=1, le=65536)
    model: str = Field(..., min_length=1, max_length=200)
    indexes: dict[str, IndexKind] = Field(default_factory=dict, max_length=100,
                                          description="payload indexes to build (field -> kind), if missing")


class CollectionInfo(BaseModel):
    dim: int
    model: str
    count: int


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
    offset: str | None = None
    filter: Filter | None = None


class ScrollResponse(BaseModel):
    points: list[PointOut]
    next: str | None


class CountRequest(BaseModel):
    filter: Filter | None = None


class Hits(BaseModel):
    hits: list[Hit]
