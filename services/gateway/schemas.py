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


class SearchResponse(BaseModel):
    results: list[SearchResult] = Field(..., description="best first")
    took_ms: float
