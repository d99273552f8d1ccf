"""Who is calling, what they may do, how often, and from which web origins. One ASGI middleware (Access) resolves
the caller from its key, checks the scope the path needs and rate-limits on who the caller is, before any body is
read; the routes then ask the caller (deps.CallerDep) about what they touch (a dog's owner, a job's)."""
from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

from fastapi.responses import JSONResponse
from prometheus_client import Counter

from dogsearch.core.access import NOBODY, OPEN, Caller, Keyring, Scope, check_internal
from dogsearch.core.errors import Forbidden, Unauthenticated
from dogsearch.services.errors import error_response, retry_after
from dogsearch.services.internal import TRUSTED, TwoKeys, presented_key
from dogsearch.services.ops import LOGGED

log = logging.getLogger("dogsearch.access")

# Refused before any route runs, so the request metrics never see them: a burst here is someone knocking.
REFUSED = Counter("dogsearch_access_refused_total", "requests refused by the access layer", ["reason"])

CALLER = "dogsearch.caller"  # the ASGI scope key of the resolved Caller (deps.CallerDep reads it)
# POSTs that only read: searching, finding a photo's dogs, asking for a pose, a preview or when and where a photo was
# taken needs the search scope, not write.
READ_ONLY_POSTS = frozenset({"/v1/search", "/v1/pose", "/v1/detect", "/v1/preview", "/v1/taken"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# A key nobody issued costs this many tokens of the sender's address: guessing keys runs dry fast.
FAILED_AUTH_COST = 5
INTERNAL = Caller("internal", None, internal=True)

Network = IPv4Network | IPv6Network


def needed_scope(method: str, path: str) -> Scope | None:
    """The scope a request needs before it is read; None: anyone (the web UI, health checks, /v1/me). Finer
    checks (a dog's owner, a job's) are the routes'."""
    if path == "/metrics" or path.startswith("/internal"):
        return "admin"
    if not path.startswith("/v1/") or path == "/v1/me":
        return None
    if path.startswith("/v1/jobs"):
        return "write"  # a write key sees its own jobs only (routers/jobs.py)
    if method in WRITE_METHODS and path not in READ_ONLY_POSTS:
        return "write"
    return "search"


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The caller's address: the peer's, unless the peer is a trusted proxy; then, in X-Forwarded-For, the
    rightmost address that is not a trusted proxy (what's left of it the client wrote itself)."""
    peer = peer or "unknown"
    if not trusted or not _within(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class RateLimit:
    """A token bucket per client: `per_minute` calls on average, bursts up to `burst`. A call is let through while
    the bucket has a token, and costs `cost` of them (a failed authentication, more). State is per process."""

    def __init__(self, per_minute: int, burst: int, max_clients: int = 100_000) -> None:
        self.rate, self.burst, self.max_clients = per_minute / 60.0, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def take(self, client: str, cost: int = 1) -> float:
        """Seconds to wait before a call would be allowed; 0 when this one is (and its cost was spent)."""
        return self._take_here(client, cost)

    async def aclose(self) -> None:
        """Lets go of what it holds outside this process (at the gateway's shutdown): nothing here."""

    def _take_here(self, client: str, cost: int) -> float:
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            tokens, wait = max(0.0, tokens - cost), 0.0
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:  # forget the longest-idle clients
            self._buckets.popitem(last=False)
        return wait


# The same bucket in Redis, so that every gateway replica counts against it. KEYS: the bucket. ARGV: tokens per
# second, burst, cost. Redis's clock: the replicas' clocks may differ.
_BUCKET = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = math.max(0, tokens - cost) else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RedisRateLimit(RateLimit):
    """Counts in Redis (the jobs' broker), shared by every gateway replica; in this process's memory while Redis
    does not answer (a warning a minute says so)."""

    def __init__(self, url: str, per_minute: int, burst: int, prefix: str = "dogsearch:ratelimit:") -> None:
        import redis.asyncio as aioredis

        super().__init__(per_minute, burst)
        self.prefix = prefix
        self.redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5,
                                             client_name="dogsearch-ratelimit")
        self._script = self.redis.register_script(_BUCKET)
        self._warned_at = -math.inf

    async def take(self, client: str, cost: int = 1) -> float:
        import redis

        try:
            return float(await self._script(keys=[self.prefix + client], args=[self.rate, self.burst, cost]))
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("rate limit: Redis unavailable, counting in this process only",
                            extra={"error": f"{type(exc).__name__}: {exc}"})
            return self._take_here(client, cost)

    async def aclose(self) -> None:
        await self.redis.aclose()


def rate_limit(per_minute: int, burst: int, redis_url: str | None) -> RateLimit | None:
    """The gateway's limiter: None without a limit; in Redis (shared by the replicas) where `redis_url` is set."""
    if not per_minute:
        return None
    return RedisRateLimit(redis_url, per_minute, burst) if redis_url else RateLimit(per_minute, burst)


class Access:
    """Resolves each request's caller from its key (X-API-Key or Authorization: Bearer), rate-limits on the key's
    name (else the client's address), and refuses what the caller's scope does not allow: 401 without a known key
    (or with two different ones), 403 with one that lacks the scope, 429 past the limit. The caller goes in the scope
    for the routes. `limit`: rate_limit's (made and closed by the app, whose lifespan this middleware never sees)."""

    def __init__(self, app, *, keyring: Keyring, anonymous_search: bool = False, internal_key: str | None = None,
                 trusted_proxies: Sequence[Network] = (), limit: RateLimit | None = None) -> None:
        self.app, self.keyring, self.anonymous_search = app, keyring, anonymous_search
        self.internal_key, self.trusted, self.limit = internal_key, list(trusted_proxies), limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        needed = needed_scope(scope["method"], path)
        if needed is None and not path.startswith("/v1/"):
            return await self.app(scope, receive, send)
        address = client_address((scope.get("client") or (None,))[0],
                                 [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"],
                                 self.trusted)
        # the request's log line says who called from where, refused or not (ops.RequestMetrics)
        scope[LOGGED] = {"client": address}
        try:
            secret = presented_key(scope["headers"])
        except TwoKeys as exc:
            return await self._answer(scope, receive, send, address, FAILED_AUTH_COST, exc)
        caller = self.resolve(secret, internal_door=needed == "admin" and not path.startswith("/v1"))
        if caller is not None and caller.name:
            scope[LOGGED]["caller"] = caller.name
        if caller is None:
            return await self._answer(scope, receive, send, address, FAILED_AUTH_COST,
                                      Unauthenticated("unknown API key"))
        if path.startswith("/v1/") and self.limit is not None:
            bucket = f"key:{caller.name}" if caller.name and not caller.open else f"addr:{address}"
            if (wait := await self.limit.take(bucket)) > 0:
                return await _too_many(wait)(scope, receive, send)
        if needed is not None and not caller.may(needed):
            if caller.name is None:
                REFUSED.labels("unauthenticated").inc()
                return await error_response(Unauthenticated(
                    f"this needs an API key with the {needed} scope (X-API-Key or Authorization: Bearer)"
                ))(scope, receive, send)
            REFUSED.labels("forbidden").inc()
            return await error_response(Forbidden(f"key {caller.name!r} ({caller.scope}) lacks the {needed} scope"))(
                scope, receive, send)
        scope[CALLER] = caller
        if path.startswith("/internal"):
            scope[TRUSTED] = True  # the mounted service need not ask again
        await self.app(scope, receive, send)

    def resolve(self, secret: str | None, internal_door: bool = False) -> Caller | None:
        """The caller a secret stands for; None for a secret nobody issued. Where nobody has keys, everyone is
        admin (serve allows that on a loopback address only)."""
        if internal_door and check_internal(secret, self.internal_key):
            return INTERNAL
        if self.keyring.open:
            return OPEN
        if secret is None:
            return Caller(None, "search") if self.anonymous_search else NOBODY
        key = self.keyring.verify(secret)
        return Caller(key.name, key.scope) if key else None

    async def _answer(self, scope, receive, send, address: str, cost: int, error: Unauthenticated) -> None:
        """A failed authentication: 401, and it costs the address `cost` tokens (429 once they are gone)."""
        if self.limit is not None and (wait := await self.limit.take(f"addr:{address}", cost)) > 0:
            return await _too_many(wait)(scope, receive, send)
        REFUSED.labels("unknown_key").inc()
        await error_response(error)(scope, receive, send)


def _too_many(wait: float) -> JSONResponse:
    REFUSED.labels("rate_limited").inc()
    return JSONResponse({"detail": "rate limit exceeded, slow down", "code": "rate_limited"}, 429,
                        headers={"Retry-After": str(retry_after(wait))})
