"""Gateway: the public API and web UI. Composes the embedder, search and pose services through their HTTP clients
into the gallery (dogsearch/gallery), whose use cases the routers (routers/) call."""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.gallery.errors import NoDogFound
from dogsearch.gallery.gallery import Gallery
from dogsearch.gallery.layout import undated, upgrade
from dogsearch.jobs.service import Jobs
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.embedder.client import EmbedderClient
from dogsearch.services.gateway.deps import Parts, build_gallery, build_watches, close_locks
from dogsearch.services.gateway.metrics import JobPhotos
from dogsearch.services.gateway.openapi import install_openapi
from dogsearch.services.gateway.poses import StoredPoses
from dogsearch.services.gateway.routers import ALL as ROUTERS
from dogsearch.services.gateway.samedog import SameDog
from dogsearch.services.gateway.security import Access, rate_limit
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.gateway.web import DEFAULT_WEB_DIR, SecurityHeaders, install_web
from dogsearch.services.gateway.webhooks import WebhookSender
from dogsearch.services.internal import TwoKeys, presented_key
from dogsearch.services.ops import install_ops
from dogsearch.services.pose.client import PoseClient
from dogsearch.services.search.client import SearchClient
from dogsearch.watches.delivery import Deliverer
from dogsearch.watches.tasks import CHECK

log = logging.getLogger("dogsearch.gateway")


def create_app(
    settings: GatewaySettings | None = None,
    *,
    embedder: EmbedderClient | None = None,
    search: SearchClient | None = None,
    pose: PoseClient | None = None,
    sub_apps: tuple[FastAPI, ...] = (),
    jobs_settings: JobsSettings | None = None,
) -> FastAPI:
    """The clients default to the services at the settings' URLs; `sub_apps` are the other services' apps when they
    run in this process (their lifespans run with ours)."""
    settings = settings or GatewaySettings()
    keyring = settings.keyring  # first: a bad keys file stops the start before anything is built
    timeout, token = settings.upstream_timeout_s, settings.internal_secret
    embedder = embedder or EmbedderClient(settings.embedder_url, timeout=timeout, token=token)
    search_client = search or SearchClient(settings.search_url, timeout=timeout, token=token)
    pose_client = pose or PoseClient(settings.pose_url, timeout=timeout, token=token)
    same_dog = SameDog(settings)
    jobs_settings = jobs_settings or JobsSettings()
    gallery = build_gallery(settings, embedder, search_client, same_dog, broker_url=jobs_settings.broker_url)
    bulk = Jobs(jobs_settings, gallery.ingest)  # on Celery workers, or in this process
    watches = build_watches(settings, search_client, same_dog, make=True)
    sender = WebhookSender(settings.webhook_max_response_bytes)
    # Deliveries are sent from the gateway whoever recorded them (this process, or a worker: polled for).
    deliverer = Deliverer(watches.store, sender, allow_private=settings.webhook_allow_private,
                          timeout_s=settings.webhook_timeout_s, max_attempts=settings.webhook_max_attempts,
                          backoff_s=settings.webhook_backoff_s, poll_s=settings.webhook_poll_s)
    watches.on_match = deliverer.wake
    gallery.ingest.on_stored = _check_in_workers(bulk, watches) if bulk.celery else _check_here(watches)
    gallery.on_deleted = _end_watches(watches)
    gallery.ingest.hashes = bulk.store  # every new photo's look-alikes, by the hashes the jobs file too
    parts = Parts(settings, gallery, bulk, pose_client, StoredPoses(pose_client, gallery), same_dog, watches)
    # counts shared by the replicas through the broker
    limit = rate_limit(settings.rate_limit_per_minute, settings.rate_limit_burst, bulk.settings.broker_url)

    upgrading: list[asyncio.Task] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with AsyncExitStack() as stack:
            for sub in sub_apps:
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            # Entries stored by an older release get the current layout's fields, in the background.
            upgrading.append(asyncio.create_task(_upgrade_layout(gallery)))
            delivering = asyncio.create_task(deliverer.run())
            try:
                async with bulk.running():  # stops the embedded job runner before the clients close
                    yield
            finally:
                upgrading[0].cancel()
                delivering.cancel()
                await asyncio.gather(delivering, return_exceptions=True)
                for client in (embedder, search_client, pose_client, sender):
                    await client.aclose()
                if limit is not None:
                    await limit.aclose()
                await close_locks(gallery)
                await asyncio.to_thread(watches.store.close)

    app = FastAPI(title="dogsearch", version="0.1.0", description="Find the most similar dogs in a collection from "
                                                                  "a photo.", lifespan=lifespan)
    app.state.parts = parts
    install_openapi(app, keys=not keyring.open, anonymous_search=settings.anonymous_search)

    async def broker_down() -> str | None:
        """Redis, where a broker is set: adding photos (their hashes) and jobs need it, searches do not, so the
        gateway stays ready and says so."""
        try:
            await asyncio.wait_for(asyncio.to_thread(bulk.store.ping), timeout=2.0)
        except (Unavailable, TimeoutError) as exc:
            if not isinstance(exc, Unavailable):
                return "job broker timed out"
            # Redis's own error (its address) too: readiness says it only to the admin and internal keys
            return f"job broker unreachable: {exc}" + (f" ({exc.__cause__})" if exc.__cause__ else "")
        return None

    async def ready() -> str | None:
        reasons = [r for r in await asyncio.gather(embedder.ready(), search_client.ready()) if r]
        if not reasons and (mismatch := await gallery.space.mismatch()):
            reasons.append(mismatch)
        if upgrading and not upgrading[0].done():
            reasons.append("upgrading the stored dogs to the current storage layout")
        return "; ".join(reasons) or None

    if settings.api_key is not None:
        log.warning("DOGSEARCH_GATEWAY_API_KEY is deprecated: it is taken as an admin key named 'admin'; make keys "
                    "with `dogsearch keys add` and set DOGSEARCH_GATEWAY_API_KEYS")
    access = {"keyring": keyring, "anonymous_search": settings.anonymous_search,
              "internal_key": settings.internal_secret, "trusted_proxies": settings.trusted_proxies,
              "limit": limit}
    # Bodies are refused before they are read: a photo's limit for forms, a zip's only where zips go, JSON's for
    # any other body (every route still checks its own limit); what is not allowed is refused before that (Access).
    # JSON's grows with a job's payload limit: each of its bytes may be sent as an escape of up to 6.
    json_bytes = max(settings.max_json_bytes, 6 * bulk.settings.max_fields_bytes + 64 * 1024)
    install_ops(app, "gateway", ready, max_request_bytes=settings.max_upload_bytes + 256 * 1024,
                body_limits={"/v1/jobs/index/upload": bulk.settings.max_archive_bytes + 256 * 1024},
                json_bytes=json_bytes,
                collectors=[JobPhotos(bulk.store), *(sub.state.metrics for sub in sub_apps)], guard=(Access, access),
                degraded=broker_down, ready_cache_s=settings.ready_cache_s, sees_reasons=_metrics_reader(access))
    if settings.cors_origins:
        # what a browser app on another origin must read besides the body: where a new dog, job or watch is, when
        # to retry, how to authenticate (a browser hides every other header from its script)
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["Location", "Retry-After", "WWW-Authenticate"])
    @app.exception_handler(NoDogFound)
    async def no_dog(_: Request, exc: NoDogFound) -> JSONResponse:  # says what the photo seems to show instead
        which = {} if exc.photo is None else {"photo": exc.photo}  # of several photos of one dog
        return JSONResponse({"detail": exc.reason, "code": exc.code, "seems": exc.seems, **which}, status_code=422)

    install_web(app, settings.web_dir or DEFAULT_WEB_DIR)
    app.add_middleware(SecurityHeaders)
    for routes in ROUTERS:
        app.include_router(routes.router(settings))
    return app


def _metrics_reader(access: dict):
    """Whether a request may read why the gateway is not ready (the reasons may name internal hosts): what may read
    /metrics, an admin key or the internal key (anyone on an open server)."""
    keys = Access(None, **access)

    def may(request: Request) -> bool:
        try:
            caller = keys.resolve(presented_key(request.scope["headers"]), internal_door=True)
        except TwoKeys:
            return False
        return caller is not None and caller.may("admin")
    return may


def _check_here(watches):
    async def check(entry_ids: list[str]) -> None:
        await watches.check(entry_ids)
    return check


def _check_in_workers(bulk: Jobs, watches):
    here = _check_here(watches)

    async def enqueue(entry_ids: list[str]) -> None:
        try:
            await asyncio.to_thread(bulk.celery.send_task, CHECK, (entry_ids,))
        except OperationalError:  # the broker down: checked here (the dogs are stored; a lost check, a lost alert)
            log.warning("the job broker does not answer: the new dogs are checked against the watches here")
            await here(entry_ids)
    return enqueue


def _end_watches(watches):
    async def dog_deleted(dog_id: str) -> None:
        try:
            await watches.dog_deleted(dog_id)
        except sqlite3.Error:  # the dog is gone all the same (its inboxes leave it out as they are read): said
            log.exception("dog %s deleted, but the watch store was not told: the watches made from it go on", dog_id)
    return dog_deleted


async def _upgrade_layout(gallery: Gallery, retry_s: float = 1.0) -> None:
    """gallery/layout.py's upgrade, once the search service answers; lists keep the id order until it is done."""
    while True:
        try:
            if await undated(gallery.index):
                gallery.newest_first = False
            await upgrade(gallery.index)
            gallery.newest_first = True
            return
        except (Unavailable, TimedOut):
            await asyncio.sleep(retry_s)
        except Exception:  # said, not lost in a task nobody awaits; the gallery works on in the old order
            log.exception("the storage layout's upgrade failed")
            return
