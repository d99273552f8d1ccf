"""Poses of stored dogs for the public API: the pose service does the work, on the dog's own box; answers are cached
here, by photo id (made from the photo's bytes, so an answer never goes stale) and box, newest kept."""
from __future__ import annotations

import asyncio
from collections import OrderedDict

from dogsearch.core.boxes import box_text
from dogsearch.gallery.gallery import Gallery
from dogsearch.gallery.records import Dog
from dogsearch.services.pose.client import PoseClient


class PoseCache:
    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, dict] = OrderedDict()

    def get(self, key: str) -> dict | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: dict) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class StoredPoses:
    def __init__(self, client: PoseClient, gallery: Gallery, cache_size: int = 4096) -> None:
        self.client, self.gallery = client, gallery
        self.cache = PoseCache(cache_size)

    async def of(self, dog: Dog) -> dict:
        """The pose of the dog in its box (of the photo it was read from); a dog stored whole, in the whole photo (a
        close-up: the pose service, asked for the photo's dogs, may find none in it)."""
        box = dog.payload.get("box")
        box = tuple(box) if isinstance(box, list) and len(box) == 4 else None
        key = dog.photo_id if box is None else f"{dog.photo_id}/{box_text(box)}"
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        photo = await self.gallery.photo(dog)
        if box is None:
            info = await asyncio.to_thread(self.gallery.limits.probe, photo)
            box = (0.0, 0.0, float(info.width), float(info.height))
        result = await self.client.pose(photo, [box])
        self.cache.put(key, result)
        return result
