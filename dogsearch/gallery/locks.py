"""One lock per photo id (or dog id): what adds a photo and what deletes it take turns, so a photo's file and its
entry are written, looked at and removed together (gallery/ingest.py, gallery/gallery.py). In this process an asyncio
lock; where a broker is configured, also a Redis lock behind it (SharedLocks), so that the other gateway replicas and
the Celery workers take turns too. Without a broker other processes are not covered: there, a photo's file is whole
or absent (atomic rename), and a failed call removes only the files it made itself and only once it saw the entry is
not stored."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext

from dogsearch.core.errors import Unavailable

log = logging.getLogger("dogsearch.gallery")
# How long a lock outlives the process that held it (killed, or cut off from Redis). A holder renews its lock every
# third of this for as long as it holds it, so no add is cut short however long it takes: a batch's add_many waits
# for an embedder call of up to a batch of photos and an upsert, each up to the gateway's upstream timeout (60 s).
LOCK_TTL_S = 30.0


class LocksUnavailable(Unavailable):
    """Redis, which holds the locks the gateway replicas and the workers share, does not answer: retry later (503)."""


class SharedLocks:
    """Locks in Redis (the jobs' broker), one key a name, shared by every process on it. Each is set with its holder's
    token (a release never frees another's: redis-py's Lock) and a ttl that its holder renews."""

    def __init__(self, url: str, ttl_s: float = LOCK_TTL_S) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.ttl_s = ttl_s

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Holds `name`'s lock, waiting for as long as another holds it; LocksUnavailable when Redis does not answer."""
        import redis
        from redis.exceptions import LockNotOwnedError

        lock = self.redis.lock(name, timeout=self.ttl_s, sleep=0.05, thread_local=False)
        try:
            await lock.acquire()
        except (redis.RedisError, OSError) as exc:
            raise LocksUnavailable(f"the job broker (Redis) does not answer (it holds the locks the gateway "
                                   f"replicas and the workers share): {exc}") from exc
        renewing = asyncio.create_task(self._renew(lock))
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            try:
                await lock.release()
            except LockNotOwnedError:
                log.error("lock %s expired while held (not renewed for %.0f s): another process may have taken it "
                          "meanwhile", name, self.ttl_s)
            except (redis.RedisError, OSError):
                log.warning("lock %s not released (Redis does not answer): it expires within %.0f s", name,
                            self.ttl_s)

    async def _renew(self, lock) -> None:
        import redis
        from redis.exceptions import LockNotOwnedError

        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                await lock.reacquire()
            except LockNotOwnedError:
                return  # said at the release
            except (redis.RedisError, OSError):
                log.warning("lock %s not renewed (Redis does not answer): trying again", lock.name, exc_info=True)


class PhotoLocks:
    def __init__(self, shared: SharedLocks | None = None, kind: str = "photo") -> None:
        """`shared`: the locks of every process on the broker, taken behind this process's own (so that its own
        callers queue here, not on Redis); `kind`: what the ids name, in the shared locks' keys."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self.shared, self.kind = shared, kind

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
        shared = self.shared.hold(f"dogsearch:lock:{self.kind}:{photo}") if self.shared else nullcontext()
        try:
            async with lock, shared:
                yield
        finally:
            self._users[photo] -= 1
            if not self._users[photo]:  # nobody holds or waits: forget it, so the map stays small
                del self._users[photo], self._locks[photo]
