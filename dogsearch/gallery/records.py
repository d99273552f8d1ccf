"""The gallery's records as the domain hands them out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dog:
    id: str
    payload: dict[str, Any]  # the user's fields and what the server recorded (gallery/fields.py)

    @property
    def format(self) -> str:
        return self.payload["format"]


@dataclass(frozen=True)
class Match:
    dog: Dog
    score: float  # cosine similarity, higher is more similar


@dataclass(frozen=True)
class Page:
    dogs: list[Dog]
    next: str | None  # where the next page starts; None after the last
    total: int
