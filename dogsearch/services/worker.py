"""`dogsearch worker`: a Celery worker for bulk jobs and for checking new dogs against the watches. Scaling out is
starting more of them, on this machine or others that reach the same Redis, embedder and search services and photo
directory; the checks need the gateway's watches file, on its host (a worker without it refuses them: below)."""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from celery import Celery

from dogsearch.core.memory import freeze_startup_objects
from dogsearch.gallery.ingest import Ingestor
from dogsearch.jobs.celery_app import create_celery
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.deps import build_watches, close_locks, connect_gallery
from dogsearch.services.gateway.samedog import SameDog
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.search.client import SearchClient
from dogsearch.watches.store import StoreMissing, not_a_store
from dogsearch.watches.tasks import CHECK, register_check
from dogsearch.watches.watches import Watches

log = logging.getLogger("dogsearch.worker")


def worker_celery(settings: JobsSettings, gateway: GatewaySettings) -> Celery:
    """The Celery app of a worker: its threads each store photos as the gateway does (DOGSEARCH_GATEWAY_*: the
    same photo directory, limits, embedder and search services), and check the dogs a batch stored against the
    watches in a task of its own."""
    @asynccontextmanager
    async def ingestor() -> AsyncIterator[Ingestor]:
        gallery = connect_gallery(gateway, settings.broker_url)
        ingest = gallery.ingest

        async def enqueue(entry_ids: list[str]) -> None:
            await asyncio.to_thread(app.send_task, CHECK, (entry_ids,))

        ingest.on_stored = enqueue
        ingest.hashes = app.dogsearch_store
        try:
            yield ingest
        finally:  # the worker's shutdown: what connect_gallery made, closed
            for client in (gallery.embedder, gallery.index):
                await client.aclose()
            await close_locks(gallery)

    @asynccontextmanager
    async def watches() -> AsyncIterator[Watches]:
        if missing := missing_store(gateway):  # a worker never makes the store: it would be a store of its own
            raise StoreMissing(missing)
        search = SearchClient(gateway.search_url, timeout=gateway.upstream_timeout_s, token=gateway.internal_secret)
        try:
            made = build_watches(gateway, search, SameDog(gateway), make=False)
            try:
                yield made
            finally:  # the worker's shutdown
                made.store.close()
        finally:
            await search.aclose()

    app = create_celery(settings, ingestor)
    register_check(app, lambda: app.dogsearch_threads.get("watches", watches), app.dogsearch_broker,
                   settings.max_deliveries, settings.check_retry_window_s)
    return app


def missing_store(gateway: GatewaySettings) -> str | None:
    """Why this worker cannot check new dogs against the watches (no store its gateway made where it looks), with
    the settings that say where, or None."""
    if (why := not_a_store(gateway.watches_file)) is None:
        return None
    return (f"{why}: a worker opens the store its gateway made (at the gateway's start) and makes none; set "
            "DOGSEARCH_GATEWAY_WATCHES_PATH (else DOGSEARCH_GATEWAY_DATA_DIR, watches/watches.sqlite3 beside it) as "
            "the gateway's, on the gateway's host")


def refused_key(gateway: GatewaySettings) -> str | None:
    """Why the embedder or the search service refuses this worker's internal key (a 401 on a route that needs it),
    or None. A service that does not answer yet is not a refusal: compose may start the worker first."""
    headers = {"Authorization": f"Bearer {gateway.internal_secret}"} if gateway.internal_secret else {}
    for name, url in (("embedder", gateway.embedder_url), ("search", gateway.search_url)):
        try:
            answer = httpx.get(f"{url.rstrip('/')}/metrics", headers=headers, timeout=5)
        except httpx.HTTPError as exc:
            log.warning("the %s service at %s does not answer yet (%s): the worker starts anyway", name, url,
                        type(exc).__name__)
            continue
        if answer.status_code == 401:
            given = "a key that is not" if gateway.internal_secret else "no key, and it needs"
            return (f"the {name} service at {url} refuses this worker: it was given {given} the services' internal "
                    "key (set DOGSEARCH_INTERNAL_KEY as for the services)")
    return None


def run_worker(*, concurrency: int, pool: str, loglevel: str = "INFO", name: str | None = None) -> None:
    settings = JobsSettings()
    if not settings.broker_url:
        raise SystemExit("dogsearch worker: set DOGSEARCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    gateway = GatewaySettings()
    # A wrong key would fail every photo of every job after its retries, while the worker looked healthy.
    if refused := refused_key(gateway):
        raise SystemExit(f"dogsearch worker: {refused}")
    if missing := missing_store(gateway):
        log.warning("this worker refuses checks of new dogs against the watches while %s; each is sent again until "
                    "a worker has the store, for up to DOGSEARCH_JOBS_CHECK_RETRY_WINDOW_S (%d s), then fails",
                    missing, settings.check_retry_window_s)
    else:
        log.info("checks new dogs against the watches in %s", gateway.watches_file)
    app = worker_celery(settings, gateway)
    freeze_startup_objects()
    app.worker_main([
        "worker", f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
        # each worker its own node name, however many run on one host (celery@host for all: "1 node online")
        f"--hostname={name or f'worker-{os.getpid()}@%h'}",
        # No broadcast chatter between workers: they share nothing but the queue.
        "--without-gossip", "--without-mingle",
    ])
