"""Adding photos to the gallery: check, embed, keep the photo, upsert its vector. Shared by POST /v1/dogs, bulk jobs
and re-indexing, so every way in stores a dog the same way."""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dogsearch.core.images import DecodedImage, ImageInfo, ImageLimits
from dogsearch.gallery.contracts import Embedder, Index
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import Dog
from dogsearch.gallery.space import VectorSpace
from dogsearch.search.contract import CollectionMissing

# How large a JPEG is decoded for the bulk path's perceptual hash (9x8 pixels): libjpeg's 1/8 scale for most
# photos, which only reads each block's average.
SHRUNK_SIDE = 64


@dataclass(frozen=True)
class Upload:
    data: bytes
    fields: dict[str, Any]  # the user's fields, already checked (dogsearch.gallery.fields.user_fields)
    sha256: str = field(default="", repr=False)  # of `data`, hashed once (a phone photo's takes milliseconds)

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", hashlib.sha256(self.data).hexdigest())

    @property
    def dog_id(self) -> str:
        """Ids come from the photo's content, so the same photo uploaded twice is one dog."""
        return str(uuid.UUID(hex=self.sha256[:32]))


@dataclass(frozen=True)
class Added:
    dog: Dog
    created: bool  # False: this photo was already stored, and `dog` is the stored one


class Ingestor:
    def __init__(self, embedder: Embedder, index: Index, photos: PhotoStore, space: VectorSpace,
                 limits: ImageLimits) -> None:
        self.embedder, self.index, self.photos, self.space, self.limits = embedder, index, photos, space, limits

    def decode(self, data: bytes) -> DecodedImage:
        """Checks a photo and decodes it only as large as a perceptual hash needs (a JPEG shrinks on load; the
        embedder decodes a copy of its own for the model, thumbnails are made later from the stored photo).
        Blocking."""
        return self.limits.decode(data, min_side=SHRUNK_SIDE)

    async def stored(self, dog_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: stored point} for the stored ones among `dog_ids`, in one call."""
        if not dog_ids:
            return {}
        try:
            return await self.index.lookup(dog_ids)
        except CollectionMissing:  # nothing stored yet
            return {}

    async def add(self, upload: Upload) -> Added:
        """One photo. Its header is checked here (size, format, pixels); the embedder decodes it, which finds a
        truncated or corrupt one before anything is stored."""
        info = await asyncio.to_thread(self.limits.probe, upload.data)
        return (await self.add_many([(upload, info)]))[0]

    async def add_many(self, uploads: Sequence[tuple[Upload, ImageInfo]]) -> list[Added]:
        """Several checked photos with one embedder call: the bulk path runs the model at its batch size.
        Photos already stored are not embedded again."""
        dog_ids = [upload.dog_id for upload, _ in uploads]
        stored = await self.stored(dog_ids)
        results: list[Added | None] = []
        todo = []
        for dog_id, (upload, info) in zip(dog_ids, uploads, strict=True):
            point = stored.get(dog_id)
            results.append(Added(Dog(dog_id, point["payload"]), False) if point else None)
            if point is None:
                todo.append((len(results) - 1, dog_id, upload, info))
        if todo:
            model, vectors = await self.embedder.embed([u.data for _, _, u, _ in todo])
            await self.space.check(model)
            points = []
            for (index, dog_id, upload, info), vector in zip(todo, vectors, strict=True):
                record = {
                    **upload.fields,
                    "sha256": upload.sha256,
                    "format": info.format,
                    "width": info.width,
                    "height": info.height,
                    "bytes": len(upload.data),
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "model": model,
                }
                points.append({"id": dog_id, "vector": vector, "payload": record})
                results[index] = Added(Dog(dog_id, record), True)
            try:
                await asyncio.to_thread(self._save_photos, todo)
                await self.index.upsert(points)
            except BaseException:
                # Without its vector a photo is unreachable: don't leave it behind.
                for (_, dog_id, _, info) in todo:
                    await asyncio.to_thread(self.photos.delete, dog_id, info.format)
                raise
        return [r for r in results if r is not None]

    def _save_photos(self, todo: Sequence[tuple[int, str, Upload, ImageInfo]]) -> None:
        for _, dog_id, upload, info in todo:
            self.photos.save(dog_id, info.format, upload.data)
