"""The embedded engine's HNSW index, rebuilt in the background at quiet moments."""
from __future__ import annotations

import asyncio
import logging
import time

from dogsearch.search.contract import StoreError, VectorStore

log = logging.getLogger("dogsearch.search")


class IndexBuilder:
    """Rebuilds the HNSW index once enough points changed, at a quiet moment.

    qdrant-edge holds the GIL for the whole of optimize() (seconds at 10k points, ~30 s at 100k), so the
    process answers nothing while it runs, and only one process may open the store. So it runs only after
    `idle_s` without writes; until then new points are still found, by exact search over the unindexed part."""

    def __init__(self, store: VectorStore, every: int, idle_s: float) -> None:
        self._store, self._every, self._idle_s = store, every, idle_s
        self._changed = 0
        self._last_write = time.monotonic()

    def note_changes(self, n: int) -> None:
        self._changed += n
        self._last_write = time.monotonic()

    @property
    def due(self) -> bool:
        return self._changed >= self._every and time.monotonic() - self._last_write >= self._idle_s

    async def run_forever(self, poll_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(poll_s)
            if self.due:
                await self.build()

    async def build(self) -> None:
        changed, self._changed = self._changed, 0
        start = time.perf_counter()
        try:
            await asyncio.to_thread(self._store.optimize)
        except StoreError:
            self._changed += changed
            log.exception("index build failed")
            return
        log.info("index built", extra={"seconds": round(time.perf_counter() - start, 2), **self._store.stats()})
