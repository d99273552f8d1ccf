"""What every service exposes for operators: /healthz, /readyz, Prometheus /metrics, request metrics; and domain
errors answered as JSON with their status (dogsearch/services/errors.py)."""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from dogsearch.core.errors import TooLarge
from dogsearch.core.jsontext import UnreadableJson, json_text
from dogsearch.services.errors import MalformedBody, error_response, install_error_mapping
from dogsearch.services.internal import InternalGuard

log = logging.getLogger("dogsearch.http")

REQUESTS = Counter(
    "dogsearch_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "dogsearch_http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# A readiness check returns None when ready, else the reason it is not.
ReadyCheck = Callable[[], Awaitable[str | None]]
# Whether a request may read why the service is not ready (the reasons may name internal hosts).
SeesReasons = Callable[[Request], bool]
# What /readyz tells a caller that may not read the reasons: the details go to the log.
HIDDEN = "details in the log, and in this answer for an admin key or the internal key"


class Probe:
    """The readiness checks (`ready`, then `degraded`) as /readyz runs them: one run at a time, its answer kept
    `seconds` after it ends, so a flood of probes asks the upstreams no more than once in that time; each new
    answer is logged once."""

    def __init__(self, service: str, ready: ReadyCheck, degraded: ReadyCheck | None, seconds: float) -> None:
        self.service, self.ready, self.degraded, self.seconds = service, ready, degraded, seconds
        self._task: asyncio.Task | None = None
        self._until = -math.inf
        self._said: tuple[str | None, str | None] = (None, None)

    async def __call__(self) -> tuple[str | None, str | None]:
        """(why not ready, or None; what is down that leaves it ready, or None)."""
        loop = asyncio.get_running_loop()
        if self._task is None or (self._task.done() and loop.time() >= self._until):
            self._task = loop.create_task(self._run())
        return await asyncio.shield(self._task)  # a probe that hangs up does not cancel the others' answer

    async def _run(self) -> tuple[str | None, str | None]:
        try:
            reason = await self.ready()
            answer = reason, (await self.degraded() if reason is None and self.degraded is not None else None)
        finally:
            self._until = asyncio.get_running_loop().time() + self.seconds
        if answer != self._said:
            self._said = answer
            if answer == (None, None):
                log.info("%s ready", self.service, extra={"service": self.service})
            else:
                log.warning("%s %s: %s", self.service, "not ready" if reason else "degraded", reason or answer[1],
                            extra={"service": self.service})
        return answer


def _is_form(scope) -> bool:
    return dict(scope["headers"]).get(b"content-type", b"").lower().startswith(b"multipart/form-data")


class BodyLimit:
    """Refuses request bodies over `limit` bytes (or the limit `per_path` gives a path; or `json`, when smaller,
    for any body but a multipart form) with 413: at once from Content-Length, and while reading for a chunked body
    that never said its length (the app then sees a disconnect, and its answer is replaced)."""

    def __init__(self, app, limit: int, per_path: dict[str, int] | None = None, json: int | None = None) -> None:
        self.app, self.default, self.per_path, self.json = app, limit, per_path or {}, json

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.per_path.get(scope["path"], self.default)
        if self.json is not None and not _is_form(scope):  # parsed whole, at ~50x its size in memory
            limit = min(limit, self.json)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            return await self._refuse(send, int(declared), limit)
        seen, over, answered = 0, False, False

        async def counting_receive():
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal answered
            if over:
                if not answered:
                    answered = True
                    await self._refuse(send, seen, limit)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:  # a disconnect we faked is not an error; anything else is
                raise
        if over and not answered:
            await self._refuse(send, seen, limit)

    @staticmethod
    async def _refuse(send, size: int, limit: int) -> None:
        response = JSONResponse({"detail": f"request too large: over {limit} bytes ({size} seen)",
                                 "code": TooLarge.code}, 413)
        await response({"type": "http"}, None, send)


class JsonText:
    """Refuses with 422 a body (any but a multipart form) that Python's JSON parser reads into what nothing can
    carry on: a lone surrogate ("\\ud800"), which failed as it was echoed, stored or sent to another service
    (core/jsontext.py). It is read whole first (BodyLimit, outside, keeps it small) and handed on as it came; JSON
    that does not parse is the route's to say."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _is_form(scope):
            return await self.app(scope, receive, send)
        messages = []
        while not messages or (messages[-1]["type"] == "http.request" and messages[-1].get("more_body", False)):
            messages.append(await receive())
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        if b"\\u" in body:  # only an escape makes a surrogate
            try:
                json_text(body)
            except UnreadableJson as exc:
                return await error_response(MalformedBody(f"the body is not valid JSON: {exc}"))(scope, receive, send)
            except (ValueError, RecursionError):  # no JSON: the route says what is wrong with it
                pass
        pending = iter(messages)

        async def replayed():
            return next(pending, None) or await receive()

        await self.app(scope, replayed, send)


class BodyTimeout:
    """Answers 408 (and closes the connection) when a request's body has not all arrived within `seconds` of the
    request's start: a client that sends a few bytes and stalls, or trickles them, holds a connection and what was
    read of its body only so long. The app sees a disconnect, and its answer is replaced."""

    def __init__(self, app, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline, complete, late, answered = loop.time() + self.seconds, False, False, False

        async def timed_receive():
            nonlocal complete, late
            if late:
                return {"type": "http.disconnect"}
            if complete:  # the body is in: waiting for a disconnect has no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                late = True
                return {"type": "http.disconnect"}
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message):
            nonlocal answered
            if late and not answered:
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not late:  # a disconnect we faked is not an error; anything else is
                raise
        if late and not answered:
            response = JSONResponse({"detail": f"request body not received within {self.seconds:g}s",
                                     "code": "request_timeout"}, 408, headers={"connection": "close"})
            await response({"type": "http"}, None, send)


# The ASGI scope key under which a middleware leaves what the request's log line should say of it (who called,
# from where): the gateway's access check, which may answer before any route.
LOGGED = "dogsearch.logged"


class RequestMetrics:
    """Counts, times and logs every request. Plain ASGI: Starlette's BaseHTTPMiddleware costs a task group and a
    memory stream per request, which showed in profiles of bulk ingestion (many small internal requests)."""

    def __init__(self, app, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500  # 500 unless a response starts: the app raised

        async def send_with_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - start
            path = getattr(scope.get("route"), "path", "unmatched")  # the router puts the matched route in scope
            REQUESTS.labels(self.service, scope["method"], path, str(status)).inc()
            LATENCY.labels(self.service, path).observe(elapsed)
            if path not in ("/healthz", "/readyz", "/metrics"):
                log.info("request", extra={"service": self.service, "method": scope["method"], "route": path,
                                           "status": status, "ms": round(elapsed * 1000, 1),
                                           **scope.get(LOGGED, {})})


def install_ops(app: FastAPI, service: str, ready: ReadyCheck, max_request_bytes: int | None = None,
                body_limits: dict[str, int] | None = None, json_bytes: int | None = None,
                internal_key: str | None = None,
                collectors: Sequence[Collector] = (), guard: tuple[type, dict[str, Any]] | None = None,
                degraded: ReadyCheck | None = None, ready_cache_s: float = 0.0,
                sees_reasons: SeesReasons | None = None) -> None:
    """`max_request_bytes` caps every request body; `body_limits` gives some paths a limit of their own;
    `json_bytes`: a smaller cap on every body but a multipart form, whose JSON text is checked too (JsonText);
    `internal_key`: every route but /healthz and /readyz needs it (the services behind the gateway); `guard`: a
    middleware (class, options) that refuses callers instead (the gateway's keys); `collectors`: this app's own
    metrics, read at each scrape (off the event loop: they may ask a store), kept in `app.state.metrics`;
    `degraded`: what is down that leaves the service ready for most of its work (said in /readyz, still 200);
    `ready_cache_s`: how long /readyz keeps its checks' answer (Probe); `sees_reasons`: who may read the reasons
    (others get HIDDEN; None: everyone). No path is redirected to its twin with or without a trailing slash: the
    redirect's URL was built from the request's Host header."""
    app.router.redirect_slashes = False
    if json_bytes is not None:
        app.add_middleware(JsonText)  # inside BodyLimit: what it reads whole is small
    if max_request_bytes is not None:
        app.add_middleware(BodyLimit, limit=max_request_bytes, per_path=body_limits, json=json_bytes)
    # outside BodyLimit: refused before any body is read; inside RequestMetrics: refusals are counted and logged
    if internal_key:
        app.add_middleware(InternalGuard, key=internal_key)
    if guard is not None:
        app.add_middleware(guard[0], **guard[1])

    app.add_middleware(RequestMetrics, service=service)  # added last: outermost, so it sees 413s too

    install_error_mapping(app)

    probe = Probe(service, ready, degraded, ready_cache_s)

    # HEAD too: what many uptime checkers send
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok", "service": service}

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz(request: Request) -> Response:
        reason, note = await probe()
        if sees_reasons is not None and not sees_reasons(request):
            reason, note = reason and HIDDEN, note and HIDDEN
        if reason is None:
            return JSONResponse({"status": "ready", "service": service, **({"degraded": note} if note else {})})
        return JSONResponse({"status": "not ready", "service": service, "reason": reason}, status_code=503)

    own = CollectorRegistry(auto_describe=False)  # the app's: several apps may share a process (all-in-one, tests)
    for collector in collectors:
        own.register(collector)
    app.state.metrics = own  # a gateway with the other services in its process shows theirs too

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = generate_latest() + (await asyncio.to_thread(generate_latest, own) if collectors else b"")
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)
