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
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager

from dogsearch.core.errors import Unavailable

log = logging.getLogger("dogsearch.gallery")
# How long a lock outlives the process that held it (killed, or cut off from Redis). A holder renews its lock every
# third of this for as long as it holds it, so no add is cut short however long it takes: a batch's add_many waits
# for an embedder call of up to a batch of photos and an upsert, each up to the gateway's upstream timeout (60 s).
LOCK_TTL_S = 30.0


class LocksUnavailable(Unavailable):
    """Redis, which holds the locks the gateway replicas and the workers share, does not answer: retry later (503)."""


# KEYS: the locks of one hold; ARGV[1]: its token; ARGV[2]: the ttl (ms) to give them again, or none to release them.
# Only the keys still set to the token are touched (a holder never frees or keeps another's lock); the others (lost:
# expired while held) come back.
_KEEP_OR_FREE = """
local lost = {}
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= ARGV[1] then table.insert(lost, key)
  elseif ARGV[2] then redis.call('PEXPIRE', key, ARGV[2])
  else redis.call('DEL', key) end
end
return lost
"""


class SharedLocks:
    """Locks in Redis (the jobs' broker), one key a name, shared by every process on it. Each is set with its holder's
    token (a release never frees another's) and a ttl that its holder renews."""

    def __init__(self, url: str, ttl_s: float = LOCK_TTL_S) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5,
                                             client_name="dogsearch-locks")
        self.ttl_s = ttl_s
        self._keep_or_free = self.redis.register_script(_KEEP_OR_FREE)

    async def aclose(self) -> None:
        """Closes the connections to Redis (at the shutdown of the process that made these locks)."""
        await self.redis.aclose()

    @asynccontextmanager
    async def hold(self, *names: str) -> AsyncIterator[None]:
        """Holds the locks of `names`, waiting for as long as another holds one; LocksUnavailable when Redis does not
        answer. One task renews them all while they are held."""
        import redis

        token, held = uuid.uuid4().hex, []
        renewing = asyncio.create_task(self._renew(held, token))
        try:
            try:
                await self._take(sorted(set(names)), token, held)
            except (redis.RedisError, OSError) as exc:
                # its error (an address, a port) in the log only, via the cause: the answer goes to strangers
                raise LocksUnavailable("the job broker (Redis) does not answer (it holds the locks the gateway "
                                       "replicas and the workers share)") from exc
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await self._release(held, token)

    async def _take(self, names: list[str], token: str, held: list[str]) -> None:
        """Takes the locks of the sorted `names` into `held`. All of them are tried at once, in one round trip (none
        held by another: the common case, done); past the first one another holds, those won are let go again and
        the rest taken in order, waiting for that one first: a holder waits only for a lock that sorts after all it
        holds, so two holds never wait on each other."""
        px = round(self.ttl_s * 1000)
        rest = names
        while rest:
            async with self.redis.pipeline(transaction=False) as pipe:
                for name in rest:
                    pipe.set(name, token, nx=True, px=px)
                won = [bool(w) for w in await pipe.execute()]
            first_lost = won.index(False) if not all(won) else len(rest)
            held.extend(rest[:first_lost])
            if after := [name for name, w in zip(rest[first_lost:], won[first_lost:], strict=True) if w]:
                await self._keep_or_free(keys=after, args=[token])
            rest = rest[first_lost:]
            if rest:
                while not await self.redis.set(rest[0], token, nx=True, px=px):
                    await asyncio.sleep(0.05)
                held.append(rest.pop(0))

    async def _release(self, held: list[str], token: str) -> None:
        import redis

        if not held:
            return
        try:
            lost = await self._keep_or_free(keys=held, args=[token])
        except (redis.RedisError, OSError):
            log.warning("locks %s not released (Redis does not answer): they expire within %.0f s", _named(held),
                        self.ttl_s)
            return
        if lost:
            log.error("locks %s expired while held (not renewed for %.0f s): another process may have taken them "
                      "meanwhile", _named(lost), self.ttl_s)

    async def _renew(self, held: list[str], token: str) -> None:
        """Gives the locks `held` (as many as are taken so far) their ttl again every third of it; those lost (expired
        while held) are said at the release."""
        import redis

        while True:
            await asyncio.sleep(self.ttl_s / 3)
            if not held:
                continue
            try:
                await self._keep_or_free(keys=list(held), args=[token, round(self.ttl_s * 1000)])
            except (redis.RedisError, OSError):
                log.warning("locks %s not renewed (Redis does not answer): trying again", _named(held),
                            exc_info=True)


def _named(keys: list) -> str:
    return ", ".join(k.decode() if isinstance(k, bytes) else k for k in keys)


class PhotoLocks:
    def __init__(self, shared: SharedLocks | None = None, kind: str = "photo") -> None:
        """`shared`: the locks of every process on the broker, taken behind this process's own (so that its own
        callers queue here, not on Redis); `kind`: what the ids name, in the shared locks' keys."""
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self.shared, self.kind = shared, kind

    @asynccontextmanager
    async def hold(self, photo_ids: Iterable[str]) -> AsyncIterator[None]:
        """Holds the locks of `photo_ids`, taken in sorted order so that two batches never wait on each other: this
        process's own, then the shared ones of them all (SharedLocks.hold, in one round trip where none is taken)."""
        photos = sorted(set(photo_ids))
        async with AsyncExitStack() as stack:
            for photo in photos:
                await stack.enter_async_context(self._here(photo))
            if self.shared is not None and photos:
                await stack.enter_async_context(self.shared.hold(*(f"dogsearch:lock:{self.kind}:{p}" for p in photos)))
            yield

    @asynccontextmanager
    async def _here(self, photo: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(photo, asyncio.Lock())
        self._users[photo] = self._users.get(photo, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[photo] -= 1
            if not self._users[photo]:  # nobody holds or waits: forget it, so the map stays small
                del self._users[photo], self._locks[photo]
