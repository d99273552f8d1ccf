"""What every service exposes for operators: /healthz, /readyz, Prometheus /metrics, request metrics, JSON errors."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from common.images import ImageRejected

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


def install_ops(app: FastAPI, service: str, ready: ReadyCheck, max_request_bytes: int | None = None) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):
        if max_request_bytes is not None:
            length = request.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_request_bytes:
                return JSONResponse(
                    {"detail": f"request too large: {length} bytes, limit {max_request_bytes}"}, status_code=413
                )
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - start
        REQUESTS.labels(service, request.method, path, str(response.status_code)).inc()
        LATENCY.labels(service, path).observe(elapsed)
        if path not in ("/healthz", "/readyz", "/metrics"):
            log.info(
                "request",
                extra={"service": service, "method": request.method, "route": path,
                       "status": response.status_code, "ms": round(elapsed * 1000, 1)},
            )
        return response

    @app.exception_handler(ImageRejected)
    async def image_rejected(_: Request, exc: ImageRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.reason}, status_code=exc.status_code)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        reason = await ready()
        if reason is None:
            return JSONResponse({"status": "ready", "service": service})
        return JSONResponse({"status": "not ready", "service": service, "reason": reason}, status_code=503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
