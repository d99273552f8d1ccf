"""The gallery's use cases: add, read, list, delete, search and "more like this". What the public API's routes and
the bulk jobs call; it knows no HTTP."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dogsearch.core.errors import NotFound
from dogsearch.core.images import ImageLimits, ImageRejected
from dogsearch.gallery.contracts import Embedder, Index
from dogsearch.gallery.errors import DogNotFound, PhotoDamaged, PhotoMissing
from dogsearch.gallery.ingest import Ingestor
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import Dog, Match, Page
from dogsearch.gallery.space import VectorSpace
from dogsearch.search.contract import CollectionMissing

Filter = Mapping[str, Any]


class Gallery:
    def __init__(self, embedder: Embedder, index: Index, photos: PhotoStore, limits: ImageLimits) -> None:
        self.embedder, self.index, self.photos, self.limits = embedder, index, photos, limits
        self.space = VectorSpace(embedder, index)
        self.ingest = Ingestor(embedder, index, photos, self.space, limits)

    async def dog(self, dog_id: str) -> Dog:
        try:
            point = await self.index.get(dog_id)
        except (NotFound, CollectionMissing) as exc:
            raise DogNotFound(f"no dog {dog_id}") from exc
        return _dog(point)

    async def page(self, limit: int, cursor: str | None = None, filter: Filter | None = None) -> Page:
        try:
            page = await self.index.scroll(limit, cursor, filter)
            total = await self.index.count(filter)
        except CollectionMissing:  # nothing stored yet: an empty gallery
            return Page([], None, 0)
        return Page([_dog(p) for p in page["points"]], page["next"], total)

    async def delete(self, dog_id: str) -> None:
        dog = await self.dog(dog_id)
        await self.index.delete(dog_id)  # first the vector, so no search returns a dog whose photo is gone
        await asyncio.to_thread(self.photos.delete, dog_id, dog.format)

    async def search(self, image: bytes, k: int, filter: Filter | None = None) -> list[Match]:
        """The k dogs most like the photo, best first. The photo is decoded once, by the embedder: here only its
        header is checked against this gallery's limits."""
        await asyncio.to_thread(self.limits.probe, image)
        model, vectors = await self.embedder.embed([image])
        await self.space.check(model)
        return [_match(h) for h in await self.index.query(vectors[0], k, filter)]

    async def similar(self, dog_id: str, k: int, filter: Filter | None = None) -> list[Match]:
        """More like this: the k dogs nearest to a stored one, which is left out."""
        try:
            hits = await self.index.similar(dog_id, k, filter)
        except (NotFound, CollectionMissing) as exc:
            raise DogNotFound(f"no dog {dog_id}") from exc
        return [_match(h) for h in hits]

    async def image(self, dog: Dog, size: Literal["original", "thumbnail"] = "original") -> Path:
        """The file of a dog's photo; its thumbnail is made the first time it is asked for."""
        if size == "thumbnail":
            try:
                path = await asyncio.to_thread(self.photos.thumbnail, dog.id, dog.format)
            except ImageRejected as exc:  # the stored original was checked when it came in: damaged since
                raise PhotoDamaged(f"cannot make the thumbnail of dog {dog.id}: {exc.reason}") from exc
        else:
            path = self.photos.original(dog.id, dog.format)
        if path is None or not path.exists():
            raise PhotoMissing(f"photo of dog {dog.id} is missing from the photo store")
        return path

    async def photo(self, dog: Dog) -> bytes:
        """The stored photo's bytes."""
        return await asyncio.to_thread((await self.image(dog)).read_bytes)


def _dog(point: Mapping[str, Any]) -> Dog:
    return Dog(point["id"], point["payload"])


def _match(hit: Mapping[str, Any]) -> Match:
    return Match(Dog(hit["id"], hit["payload"]), hit["score"])
