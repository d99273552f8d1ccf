"""What the gallery needs from the other services. The HTTP clients (dogsearch/services/embedder/client.py,
dogsearch/services/search/client.py) implement these over the network or in-process; their errors are the domain's
(a CollectionMissing when nothing is stored yet, an Unavailable when a service is down)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dogsearch.core.errors import InvalidInput

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FoundDog:
    """One dog the embedder found in a photo."""

    box: Box  # in the photo's pixels, EXIF orientation applied
    score: float | None  # the detector's; None: marked by a person, or no detector ran (the whole photo)
    vector: np.ndarray | None = field(default=None, repr=False)  # (dim,) float32 unit row of its crop
    breed_guess: tuple[dict[str, Any], ...] = ()  # [{"breed", "p"}], likeliest first
    marked: bool = False  # the box a request marked, not a detector's

    @property
    def whole_photo(self) -> bool:
        return self.score is None and not self.marked


@dataclass(frozen=True)
class PhotoDogs:
    """What the embedder found in one photo: its dogs, largest box first, and what the whole photo seems to show."""

    width: int
    height: int
    dogs: tuple[FoundDog, ...]
    seems: tuple[dict[str, Any], ...] = ()  # [{"label", "p"}]: the photo's likeliest ImageNet classes
    phash: int | None = None  # the whole photo's perceptual hash (dogsearch.core.phash), from the embedder's decode,
    # when asked


@dataclass(frozen=True)
class DogsEmbedding:
    model: str  # the id of the vectors (the model and how dogs are cropped for it)
    detector: str  # the detector's name, "none" when the whole photo is the dog
    photos: tuple[PhotoDogs | InvalidInput, ...]  # an error: a photo that could not be read (with `partial`)


class Embedder(Protocol):
    async def info(self) -> dict[str, Any]:
        """At least {"model": the id of the vectors embed_dogs gives, "dim": their length}."""

    async def embed_dogs(self, images: Sequence[bytes], *, whole_if_none: bool = False,
                         vectors: bool = True, seems: bool = True, partial: bool = False, phash: bool = False,
                         boxes: Sequence[Box | None] | None = None) -> DogsEmbedding:
        """Photo files in (each checked and decoded there); each photo's dogs, each with its crop's vector, out.
        `boxes`: a box a person marked for each photo (None: the detector's), in the photo's pixels: that photo's
        one dog (a BadBox when it holds too little of it).
        `whole_if_none`: a photo in which no dog is found is one dog, the whole photo (score None). `vectors`: False
        when only the boxes and guesses are wanted. `seems`: False when what a photo seems to show is wanted only
        for a photo without a dog (an empty tuple for the others). `partial`: a photo that cannot be read is the error
        it raised (an InvalidInput) in `photos`; else the call raises it, naming the photo. `phash`: each photo's
        perceptual hash too (else None)."""


class Index(Protocol):
    """The collection of vectors, as points {"id", "payload"} (and "vector" where given) and hits {"id", "score",
    "payload"}; filters map a field to a value or to a list of values (any of), with "$not" (a filter of the same
    form) and "$empty" (fields without a value) (dogsearch/search/filters.py)."""

    async def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, str] | None = None) -> Any: ...

    async def collection(self) -> dict[str, Any]:
        """{"dim", "model"} of the collection, at a cost that does not grow with it (no count: readiness asks it
        each probe); NotFound before it exists."""

    async def lookup(self, point_ids: Sequence[str], with_vector: bool = False) -> dict[str, dict[str, Any]]:
        """{id: point} for the stored ones among `point_ids` (with its "vector" if asked)."""

    async def upsert(self, points: Sequence[Mapping[str, Any]]) -> None: ...

    async def set_payload(self, point_ids: Sequence[str], payload: Mapping[str, Any]) -> Any:
        """Merges `payload`'s keys into each point's payload."""

    async def delete(self, point_id: str) -> None: ...

    async def scroll(self, limit: int, offset: str | None = None, filter: Mapping | None = None,
                     order_by: str | None = None) -> dict[str, Any]:
        """{"points": [...], "next": the offset of the next page or None}; `order_by` as the engines' scroll."""

    async def count(self, filter: Mapping | None = None) -> int: ...

    async def query(self, vector: Sequence[float], k: int, filter: Mapping | None = None) -> list[dict[str, Any]]: ...


class Hashes(Protocol):
    """Where stored photos' perceptual hashes are filed, to find a new photo's look-alikes (the job store: SQLite in
    a data directory, or Redis beside the broker). Blocking."""

    def near(self, values: Sequence[int]) -> list[list[tuple[str, int]]]:
        """For each hash, the filed (entry id, hash) pairs that share one of its bands (dogsearch/core/phash.py)."""

    def add_phashes(self, pairs: Sequence[tuple[str, int]]) -> None: ...

    def copied_late(self, job_id: str, entries: Sequence[str]) -> int:
        """Entries a bulk job stored that another call marked copies of older photos after the job's call had
        looked: the job counts their files as near-duplicates (the job store keeps the counts)."""
