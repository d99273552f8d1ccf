"""Who may write, how often anyone may call, and from which web origins."""
from __future__ import annotations

import hmac
import math
import time
from collections import OrderedDict

from fastapi.responses import JSONResponse

# POSTs that only read: anyone may search or ask for a pose without the write key.
READ_ONLY_POSTS = frozenset({"/v1/search", "/v1/pose"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_write(method: str, path: str) -> bool:
    return method in WRITE_METHODS and path.startswith("/v1/") and path not in READ_ONLY_POSTS


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    if key := headers.get(b"x-api-key"):
        return key.decode("latin-1")
    auth = headers.get(b"authorization", b"").decode("latin-1")
    return auth[7:] if auth.lower().startswith("bearer ") else None


class ApiKeyGuard:
    """Every write endpoint needs the key (X-API-Key or Authorization: Bearer); reads stay open."""

    def __init__(self, app, key: str) -> None:
        self.app, self._key = app, key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and is_write(scope["method"], scope["path"]):
            given = presented_key(dict(scope["headers"]))
            if given is None or not hmac.compare_digest(given.encode(), self._key):
                response = JSONResponse({"detail": "this endpoint needs an API key (X-API-Key header)"}, 401,
                                        headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class RateLimit:
    """A token bucket per client (its API key if it sent one, else its address): `per_minute` calls on
    average, bursts up to `burst`. 429 with Retry-After past that. State is per process."""

    def __init__(self, app, per_minute: int, burst: int, max_clients: int = 100_000) -> None:
        self.app, self.rate, self.burst, self.max_clients = app, per_minute / 60.0, burst, max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            return await self.app(scope, receive, send)
        client = presented_key(dict(scope["headers"])) or (scope.get("client") or ("unknown",))[0]
        wait = self._take(client)
        if wait > 0:
            response = JSONResponse({"detail": "rate limit exceeded, slow down"}, 429,
                                    headers={"Retry-After": str(math.ceil(wait))})
            return await response(scope, receive, send)
        await self.app(scope, receive, send)

    def _take(self, client: str) -> float:
        """Seconds to wait before a call would be allowed; 0 when this one is (and a token was spent)."""
        now = time.monotonic()
        tokens, last = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            tokens -= 1
            wait = 0.0
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:  # forget the longest-idle clients
            self._buckets.popitem(last=False)
        return wait
