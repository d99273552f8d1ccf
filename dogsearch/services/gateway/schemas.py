from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Dog(BaseModel):
    id: str
    payload: dict[str, Any] = Field(..., description="name, breed, your own fields, and what the server recorded")
    image_url: str
    thumbnail_url: str


class DogPage(BaseModel):
    items: list[Dog]
    next: str | None = Field(None, description="cursor for the next page, null at the end")
    total: int


class SearchResult(Dog):
    score: float = Field(..., description="cosine similarity, higher is more similar")
    pose: dict[str, Any] | None = Field(None, description="with pose=true: this photo's pose (as POST /v1/pose)")
    rerank_score: float | None = Field(None, description="with rerank=pose: the score results are ordered by")


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(..., description="best first")
    query_pose: dict[str, Any] | None = Field(None, description="with pose=true: the query photo's pose")
    took_ms: float
