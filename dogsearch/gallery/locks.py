"""One asyncio lock per photo id, in this process: what adds a photo and what deletes it take turns, so a photo's
file and its entry are written, looked at and removed together (gallery/ingest.py, gallery/gallery.py). Other
processes (Celery workers) are not covered: there, a photo's file is whole or absent (atomic rename), and a
failed call removes only the files it made itself and only once it saw the entry is not stored."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class PhotoLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, photo_ids: Iterable[str]) -> AsyncIterator[None]:
        """Holds the locks of `photo_ids`, taken in sorted order so that two batches never wait on each other."""
        async with AsyncExitStack() as stack:
            for photo in sorted(set(photo_ids)):
                await stack.enter_async_context(self._one(photo))
            yield

    @asynccontextmanager
    async def _one(self, photo: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(photo, asyncio.Lock())
        self._users[photo] = self._users.get(photo, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[photo] -= 1
            if not self._users[photo]:  # nobody holds or waits: forget it, so the map stays small
                del self._users[photo], self._locks[photo]
