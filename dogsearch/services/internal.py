"""The internal credential between our services: the embedder, search and pose services ask it of every caller
(the gateway, the Celery workers) when it is set; /healthz and /readyz stay open for health checks."""
from __future__ import annotations

from collections.abc import Iterable

from dogsearch.core.access import check_internal
from dogsearch.core.errors import Unauthenticated
from dogsearch.services.errors import error_response

# Set in a request's ASGI scope by the gateway once it has let a caller through to a service mounted under
# /internal (an admin key, or the internal key): the mounted service believes it. Clients cannot set scope keys.
TRUSTED = "dogsearch.trusted"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class TwoKeys(Unauthenticated):
    """A request that carries two different secrets: which one its sender meant is not guessed."""


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The secret a request (its ASGI headers) carries, in X-API-Key or Authorization: Bearer; TwoKeys when it
    carries two that differ (a valid key must not vouch for a wrong one beside it)."""
    keys = set()
    for name, value in headers:
        if name == b"x-api-key" and value.strip():
            keys.add(value.decode("latin-1").strip())
        elif name == b"authorization" and value[:7].lower() == b"bearer ":
            keys.add(value[7:].decode("latin-1").strip())
    if len(keys) > 1:
        raise TwoKeys("the request carries two different API keys (X-API-Key, Authorization: Bearer): send one")
    return keys.pop() if keys else None


def route_path(scope) -> str:
    """The path within this app (a mounted app's scope keeps the whole path and says its mount in root_path)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class InternalGuard:
    """Every route but the health checks needs the internal key (Authorization: Bearer), metrics included."""

    def __init__(self, app, key: str) -> None:
        self.app, self.key = app, key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not scope.get(TRUSTED) and route_path(scope) not in OPEN_PATHS:
            try:
                allowed = check_internal(presented_key(scope["headers"]), self.key)
            except TwoKeys:
                allowed = False
            if not allowed:
                response = error_response(Unauthenticated("this service needs the internal key "
                                                          "(Authorization: Bearer; DOGSEARCH_INTERNAL_KEY)"))
                return await response(scope, receive, send)
        await self.app(scope, receive, send)
