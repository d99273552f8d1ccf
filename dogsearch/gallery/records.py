"""The gallery's records as the domain hands them out, and how entries are named.

Ids: a photo's id is made from its bytes (the same photo uploaded twice is one photo); an entry's from its photo
and the dog's index in it, the first dog's being the photo's own id; a dog's is the id of the entry it was made
from. So a photo of one dog, the only kind stored before dogs had ids of their own, is one dog, one entry and one
photo of the same id, and those ids stay what they were (gallery/layout.py)."""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dogsearch.gallery.fields import public

_ENTRIES = uuid.UUID("6f0c1a52-5d0e-4d3b-9a51-3c0f2f7f1e0d")  # the namespace of the ids of a photo's later dogs


def photo_id(sha256: str) -> str:
    """A photo's id, from the sha256 (hex) of its bytes."""
    return str(uuid.UUID(hex=sha256[:32]))


MAX_PHOTO_DOGS = 64  # the most dogs of one photo stored (each its own entry); detectors report far fewer


def entry_id(photo: str, index: int = 0) -> str:
    """The id of the entry of a photo's `index`-th dog (0: the photo's own id)."""
    return photo if index == 0 else str(uuid.uuid5(_ENTRIES, f"{photo}/{index}"))


def marked_entry_id(photo: str, box: tuple[float, float, float, float]) -> str:
    """The id of the entry of the dog a user marked in a photo (its box, to the pixel): the same box of the same photo
    is the same dog, any other box another."""
    return str(uuid.uuid5(_ENTRIES, f"{photo}/marked/{','.join(str(round(v)) for v in box)}"))


MAX_REGROWN = 8  # how many new dogs one entry may start once the dog of its id has kept that id (see regrown_dog_id)


def regrown_dog_id(entry: str, n: int) -> str:
    """The id of the `n`-th (1, 2, ...) new dog started by the entry `entry` while a dog of that entry's id is
    stored: the photo a dog was made from, removed from it (the dog keeps its id, which is the photo's entry's), then
    added as a dog of its own."""
    return str(uuid.uuid5(_ENTRIES, f"{entry}/dog/{n}"))


def dog_created_at(dog_id: str, photo_created_at: str | None = None) -> str:
    """When a dog was stored (`dog_created_at`, on its cover: the newest are listed first): now, to the microsecond.
    A dog stored before dogs had one: its photo's `created_at`, to the second, the microseconds drawn from its id,
    so that the dogs a bulk job stored in one second keep an order of their own (a page of the list ends on a time
    that few dogs share: the next page's cursor names them, search/order.py)."""
    if photo_created_at is None:
        return datetime.now(UTC).isoformat(timespec="microseconds")
    try:
        at = datetime.fromisoformat(photo_created_at)
    except (TypeError, ValueError):  # never stored without one; listed last rather than not at all
        at = datetime(1970, 1, 1, tzinfo=UTC)
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    spread = int.from_bytes(hashlib.sha256(dog_id.encode()).digest()[:4]) % 1_000_000
    return at.replace(microsecond=spread).isoformat(timespec="microseconds")


def photo_dogs(point: Mapping[str, Any]) -> int:
    """How many dogs the photo of a stored entry (a search service point) shows (entries stored before that was
    recorded: one)."""
    count = point["payload"].get("photo_dogs")
    return count if isinstance(count, int) and 1 <= count <= MAX_PHOTO_DOGS else 1


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Dog:
    id: str
    payload: dict[str, Any]  # what the API shows: the user's fields, the cover photo's facts, a job's marks
    photo_id: str  # the photo of the entry it was read from (its cover, unless read from a search hit)
    entry_id: str
    owner: str | None = None

    @property
    def format(self) -> str:
        return self.payload["format"]

    @classmethod
    def from_entry(cls, point: Mapping[str, Any]) -> Dog:
        """The dog of an entry (a search service point); an entry stored before entries named their dog and photo
        is its own dog and photo."""
        stored = point["payload"]
        return cls(id=stored.get("dog_id", point["id"]), payload=public(stored),
                   photo_id=stored.get("photo_id", point["id"]), entry_id=point["id"], owner=stored.get("owner"))


@dataclass(frozen=True)
class Photo:
    """One photo of a dog: the entry of the dog in it."""

    id: str  # the photo's id
    entry_id: str
    cover: bool  # the photo that stands for the dog in lists
    box: list[float] | None  # where the dog is in it; None: the whole photo
    format: str
    width: int | None = None  # the photo's pixels, which the box is in (None: stored before sizes were)
    height: int | None = None

    @classmethod
    def from_entry(cls, point: Mapping[str, Any]) -> Photo:
        stored = point["payload"]
        return cls(id=stored.get("photo_id", point["id"]), entry_id=point["id"],
                   cover=bool(stored.get("cover", "dog_id" not in stored)), box=stored.get("box"),
                   format=stored["format"], width=stored.get("width"), height=stored.get("height"))


@dataclass(frozen=True)
class Match:
    dog: Dog
    score: float  # cosine similarity of its best entry, higher is more similar (re-ranked: the re-ranking's, judged.py)
    judged: float | None = None  # what the same-dog verdict reads where not `score`: its best part cosine (judged.py)
    exact: bool = False  # the query's own photo and dog, stored: the same dog, whatever the scores say

    @property
    def verdict_score(self) -> float:
        return self.score if self.judged is None else self.judged


@dataclass(frozen=True)
class Page:
    dogs: list[Dog]
    next: str | None  # where the next page starts; None after the last
    total: int
