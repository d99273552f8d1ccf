"""Adding photos to the gallery: validate, embed, keep the photo, upsert its vector. Shared by POST /v1/dogs,
bulk jobs and re-indexing, so every way in stores a dog the same way."""
from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dogsearch.core.images import DecodedImage, decode_image
from dogsearch.gallery.errors import ModelMismatch
from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.gallery.photos import PhotoStore
from dogsearch.search.contract import CollectionMissing
from dogsearch.services.embedder.client import EmbedderClient
from dogsearch.services.search.client import SearchClient

if TYPE_CHECKING:
    from dogsearch.services.gateway.settings import GatewaySettings

# How large a JPEG is decoded for the checks and the bulk path's perceptual hash (9x8 pixels): libjpeg's 1/8 scale
# for most photos, which only reads each block's average.
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
    id: str
    payload: dict[str, Any]
    created: bool  # False: this photo was already stored, and `payload` is what is stored


class VectorSpace:
    """Makes sure the collection exists for the embedder's model, and that vectors of two models never mix."""

    def __init__(self, embedder: EmbedderClient, search: SearchClient) -> None:
        self._embedder, self._search = embedder, search
        self._lock = asyncio.Lock()
        self.model: str | None = None

    async def ensure(self) -> str:
        if self.model is None:
            async with self._lock:
                if self.model is None:
                    info = await self._embedder.info()
                    await self._search.ensure_collection(info["dim"], info["model"], INDEXED_FIELDS)
                    self.model = info["model"]
        return self.model

    async def check(self, model: str) -> None:
        expected = await self.ensure()
        if model != expected:
            raise ModelMismatch(f"the embedder now serves {model!r} but the collection holds {expected!r} vectors")


class Ingestor:
    def __init__(self, embedder: EmbedderClient, search: SearchClient, photos: PhotoStore, space: VectorSpace,
                 *, max_bytes: int, max_pixels: int) -> None:
        self.embedder, self.search, self.photos, self.space = embedder, search, photos, space
        self.max_bytes, self.max_pixels = max_bytes, max_pixels

    @classmethod
    def from_settings(cls, settings: GatewaySettings, embedder: EmbedderClient, search: SearchClient) -> Ingestor:
        """Configured by DOGSEARCH_GATEWAY_*: its photo directory, thumbnail size and limits. The gateway and the
        Celery workers both build theirs here, so they store and check photos alike."""
        return cls(embedder, search, PhotoStore(settings.data_dir, settings.thumbnail_px),
                   VectorSpace(embedder, search), max_bytes=settings.max_upload_bytes,
                   max_pixels=settings.max_image_pixels)

    def decode_now(self, data: bytes, *, shrink: bool = True) -> DecodedImage:
        """Checks a photo and decodes it, by default only as large as the checks and a perceptual hash need: a
        JPEG shrinks on load (the embedder decodes a copy of its own for the model, thumbnails are made later from
        the stored photo). `shrink=False` for every pixel, e.g. to draw on it in the photo's own coordinates.
        Blocking."""
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
                            min_side=SHRUNK_SIDE if shrink else None)

    async def decode(self, data: bytes, *, shrink: bool = True) -> DecodedImage:
        return await asyncio.to_thread(self.decode_now, data, shrink=shrink)

    async def existing(self, dog_id: str) -> dict[str, Any] | None:
        return (await self.existing_many([dog_id])).get(dog_id)

    async def existing_many(self, dog_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: stored point} for the stored ones among `dog_ids`, in one call."""
        if not dog_ids:
            return {}
        try:
            return await self.search.lookup(dog_ids)
        except CollectionMissing:  # nothing stored yet
            return {}

    async def add(self, upload: Upload) -> Added:
        """One photo; raises dogsearch.core.images.ImageRejected for a bad one."""
        decoded = await self.decode(upload.data)
        return (await self.add_decoded([(upload, decoded)]))[0]

    async def add_decoded(self, uploads: Sequence[tuple[Upload, DecodedImage]]) -> list[Added]:
        """Several checked photos with one embedder call: the bulk path runs the model at its batch size.
        Photos already stored are not embedded again."""
        dog_ids = [upload.dog_id for upload, _ in uploads]
        stored = await self.existing_many(dog_ids)
        results: list[Added | None] = []
        todo = []
        for dog_id, (upload, decoded) in zip(dog_ids, uploads, strict=True):
            point = stored.get(dog_id)
            results.append(Added(dog_id, point["payload"], False) if point else None)
            if point is None:
                todo.append((len(results) - 1, dog_id, upload, decoded))
        if todo:
            model, vectors = await self.embedder.embed([u.data for _, _, u, _ in todo])
            await self.space.check(model)
            points = []
            for (index, dog_id, upload, decoded), vector in zip(todo, vectors, strict=True):
                record = {
                    **upload.fields,
                    "sha256": upload.sha256,
                    "format": decoded.format,
                    "width": decoded.width,
                    "height": decoded.height,
                    "bytes": len(upload.data),
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "model": model,
                }
                points.append({"id": dog_id, "vector": vector, "payload": record})
                results[index] = Added(dog_id, record, True)
            try:
                await asyncio.to_thread(self._save_photos, todo)
                await self.search.upsert(points)
            except BaseException:
                # Without its vector a photo is unreachable: don't leave it behind.
                for (_, dog_id, _, decoded) in todo:
                    await asyncio.to_thread(self.photos.delete, dog_id, decoded.format)
                raise
        return [r for r in results if r is not None]

    def _save_photos(self, todo: Sequence[tuple[int, str, Upload, DecodedImage]]) -> None:
        for _, dog_id, upload, decoded in todo:
            self.photos.save(dog_id, decoded.format, upload.data)
