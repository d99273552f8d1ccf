"""Base of the services' HTTP clients: the same client talks over the network or in-process (ASGI), and an error
answer comes back as the domain error the service raised (dogsearch/services/errors.py)."""
from __future__ import annotations

import math
from typing import Any

import httpx

from dogsearch.services.errors import UpstreamFailure, from_response

KEEPALIVE_EXPIRY_S = 2.0


class ServiceClient:
    service = "service"
    callers_key = False  # the token is this process's credential between services: a 401 is its fault, not the user's

    def __init__(self, base_url: str = "http://service", *, app: Any = None, timeout: float = 60.0,
                 token: str | None = None) -> None:
        """`token`: sent as Authorization: Bearer (the internal key, or a gateway API key)."""
        # With `app`, requests go through httpx's ASGI transport into that app, in this process.
        transport = httpx.ASGITransport(app=app) if app is not None else None
        # An idle connection is let go well before our servers close theirs (keep_alive_s, 5 s by default): else a
        # request sent as the server closes it meets a ReadError, an outage that never was.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=KEEPALIVE_EXPIRY_S)
        # A dead service refuses the connection at once; a short connect timeout makes a hung host fail fast too.
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 3.0))
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport, timeout=timeouts, limits=limits,
                                       headers=headers)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise UpstreamFailure(f"{self.service} unavailable: unreachable: {exc.__class__.__name__}: {exc}",
                                  source=self.service) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise from_response(self.service, response.status_code, body, callers_key=self.callers_key,
                                retry_after_s=_seconds(response.headers.get("Retry-After")))
        return response

    async def ready(self) -> str | None:
        try:
            response = await self._http.get("/readyz", timeout=5.0)
        except httpx.TransportError as exc:
            return f"{self.service} unreachable: {exc.__class__.__name__}"
        if response.status_code != 200:
            return f"{self.service}: {_not_ready_reason(response)}"
        return None

    async def aclose(self) -> None:
        await self._http.aclose()


def _not_ready_reason(response: httpx.Response) -> str:
    """Why a service's /readyz is not 200: its `reason`, or, where what answered is not one of our services (a load
    balancer's or proxy's 502 page in front of replicas that are all down), its status. Never an exception: the
    asker's own /readyz must say 503 with the reason, not crash into a 500 on every probe."""
    try:
        body = response.json()
    except ValueError:
        body = None
    reason = body.get("reason") if isinstance(body, dict) else None
    return str(reason) if reason else f"HTTP {response.status_code}"


def _seconds(retry_after: str | None) -> float | None:
    """A Retry-After in seconds, as the services send it (None: none, or an HTTP date, which they never send)."""
    try:
        seconds = float(retry_after or "")
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
