"""The gallery's use cases: add, read, list, delete, search and "more like this". What the public API's routes and
the bulk jobs call; it knows no HTTP.

Dogs are read through their entries (gallery/fields.py): a dog is found by its id on its cover entry, lists show
cover entries, a search ranks dogs by their best entry, and deleting a dog deletes all of its entries (and each
photo no entry shows any more)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dogsearch.core.images import ImageLimits, ImageRejected
from dogsearch.gallery.contracts import Embedder, Index, PhotoDogs
from dogsearch.gallery.errors import DogNotFound, NoSuchDog, PhotoDamaged, PhotoMissing
from dogsearch.gallery.ingest import Ingestor, pick
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import Dog, Match, Page
from dogsearch.gallery.space import VectorSpace
from dogsearch.search.contract import CollectionMissing

Filter = Mapping[str, Any]
_PAGE = 256  # entries read at a time when a dog's are all needed
_MOST_ENTRIES = 1000  # the most nearest entries asked for at once (the search service's default max_k)


@dataclass(frozen=True)
class Search:
    matches: list[Match]  # best first
    photo: PhotoDogs  # the query photo's dogs (and what it seems to show)
    dog: int  # the index of the dog searched for


class Gallery:
    def __init__(self, embedder: Embedder, index: Index, photos: PhotoStore, limits: ImageLimits,
                 require_dog: bool = True) -> None:
        """`require_dog`: a photo in which no dog is found is refused (NoDogFound) by searches and adds; else its
        whole photo stands for the dog."""
        self.embedder, self.index, self.photos, self.limits = embedder, index, photos, limits
        self.require_dog = require_dog
        self.space = VectorSpace(embedder, index)
        self.ingest = Ingestor(embedder, index, photos, self.space, limits, require_dog)

    async def dog(self, dog_id: str) -> Dog:
        try:
            found = (await self.index.scroll(1, None, {"dog_id": dog_id, "cover": True}))["points"]
        except CollectionMissing:
            found = []
        if not found:
            raise DogNotFound(f"no dog {dog_id}")
        return Dog.from_entry(found[0])

    async def page(self, limit: int, cursor: str | None = None, filter: Filter | None = None) -> Page:
        covers = {**(filter or {}), "cover": True}
        try:
            page = await self.index.scroll(limit, cursor, covers)
            total = await self.index.count(covers)
        except CollectionMissing:  # nothing stored yet: an empty gallery
            return Page([], None, 0)
        return Page([Dog.from_entry(p) for p in page["points"]], page["next"], total)

    async def delete(self, dog_id: str) -> None:
        await self.dog(dog_id)
        entries = await self._entries({"dog_id": dog_id})
        for entry in entries:  # first the vectors, so no search returns a dog whose photo is gone
            await self.index.delete(entry["id"])
        for photo, fmt in {(p["payload"]["photo_id"], p["payload"]["format"]) for p in entries}:
            # Under the photo's lock: an upload of the same photo either stored its entry before (the file stays)
            # or finds none after and stores the whole dog again, file and entry.
            async with self.ingest.locks.hold([photo]):
                if not await self.index.count({"photo_id": photo}):  # no other dog is in it
                    await asyncio.to_thread(self.photos.delete, photo, fmt)

    async def search(self, image: bytes, k: int, filter: Filter | None = None, dog: int = 0) -> Search:
        """The k dogs most like the photo's `dog`-th dog (0: the largest), best first. The photo is decoded once, by
        the embedder: here only its header is checked against this gallery's limits. NoDogFound when it shows no
        dog, NoSuchDog when fewer."""
        if dog < 0:
            raise NoSuchDog(f"dog {dog}: a dog's index is 0 or more")
        await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs([image], whole_if_none=not self.require_dog)
        await self.space.check(embedding.model)
        photo = embedding.photos[0]
        vector = pick(photo, dog).vector
        return Search(await _best_per_dog(lambda n: self.index.query(vector, n, filter), k), photo, dog)

    async def dog_vectors(self, dog_id: str) -> tuple[str, list[list[float]]]:
        """The vectors of a stored dog's photos, and their model."""
        await self.dog(dog_id)
        entries = await self._entries({"dog_id": dog_id})
        points = await self.index.lookup([e["id"] for e in entries], with_vector=True)
        return await self.space.ensure(), [p["vector"] for p in points.values() if p.get("vector") is not None]

    async def photo_vectors(self, images: list[bytes]) -> tuple[str, list[list[float]]]:
        """The vector of each photo's largest dog, and their model (NoDogFound for a photo without one)."""
        for image in images:
            await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs(images, whole_if_none=not self.require_dog)
        await self.space.check(embedding.model)
        return embedding.model, [[float(v) for v in pick(photo, 0).vector] for photo in embedding.photos]

    async def detect(self, image: bytes) -> PhotoDogs:
        """The dogs of a photo as a search or an add would see them (boxes, breed guesses; no vectors), and what the
        photo seems to show. No dog is an empty list here, not an error."""
        await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs([image], whole_if_none=not self.require_dog, vectors=False)
        return embedding.photos[0]

    async def update(self, dog_id: str, fields: Mapping[str, Any]) -> Dog:
        """Sets a dog's user fields (checked: fields.user_fields) on every entry of the dog."""
        await self.dog(dog_id)
        if fields:
            entries = await self._entries({"dog_id": dog_id})
            await self.index.set_payload([e["id"] for e in entries], dict(fields))
        return await self.dog(dog_id)

    async def similar(self, dog_id: str, k: int, filter: Filter | None = None) -> list[Match]:
        """More like this: the k dogs nearest to a stored one (its cover photo), which is left out."""
        dog = await self.dog(dog_id)
        others = {**(filter or {}), "$not": {"dog_id": dog_id}}
        return await _best_per_dog(lambda n: self.index.similar(dog.entry_id, n, others), k)

    async def image(self, dog: Dog, size: Literal["original", "thumbnail"] = "original") -> Path:
        """The file of a dog's photo; its thumbnail is made the first time it is asked for."""
        if size == "thumbnail":
            try:
                path = await asyncio.to_thread(self.photos.thumbnail, dog.photo_id, dog.format)
            except ImageRejected as exc:  # the stored original was checked when it came in: damaged since
                raise PhotoDamaged(f"cannot make the thumbnail of dog {dog.id}: {exc.reason}") from exc
        else:  # without the metadata that tells where it was taken and by whom (core/exif.py)
            try:
                path = await asyncio.to_thread(self.photos.public, dog.photo_id, dog.format)
            except ImageRejected as exc:
                raise PhotoDamaged(f"cannot serve the photo of dog {dog.id}: {exc.reason}") from exc
        if path is None or not path.exists():
            raise PhotoMissing(f"photo of dog {dog.id} is missing from the photo store")
        return path

    async def photo(self, dog: Dog) -> bytes:
        """The stored photo's bytes (the original, for the services behind this one)."""
        try:
            return await asyncio.to_thread(self.photos.original(dog.photo_id, dog.format).read_bytes)
        except FileNotFoundError:
            raise PhotoMissing(f"photo of dog {dog.id} is missing from the photo store") from None

    async def _entries(self, filter: Filter) -> list[dict[str, Any]]:
        entries, offset = [], None
        while True:
            page = await self.index.scroll(_PAGE, offset, filter)
            entries += page["points"]
            offset = page["next"]
            if offset is None:
                return entries


async def _best_per_dog(nearest: Callable[[int], Awaitable[list[dict[str, Any]]]], k: int) -> list[Match]:
    """The k best dogs from nearest(n), the n nearest entries: each dog once, by its best entry. Asks for more
    entries while a dog's other photos crowd the first ones out."""
    n = k
    while True:
        hits = await nearest(n)
        best: dict[str, Match] = {}
        for hit in hits:
            dog = Dog.from_entry(hit)
            best.setdefault(dog.id, Match(dog, hit["score"]))  # hits come best first
        if len(best) >= k or len(hits) < n or n >= _MOST_ENTRIES:
            return list(best.values())[:k]
        n = min(2 * n, _MOST_ENTRIES)
