"""`dogsearch worker`: a Celery worker for bulk indexing jobs. Scaling out is starting more of them, on this
machine or others that reach the same Redis, embedder and search services and photo directory."""
from __future__ import annotations

from celery import Celery

from dogsearch.core.memory import freeze_startup_objects
from dogsearch.jobs.celery_app import create_celery
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.deps import connect_gallery
from dogsearch.services.gateway.settings import GatewaySettings


def worker_celery(settings: JobsSettings, gateway: GatewaySettings) -> Celery:
    """The Celery app of a worker: its threads each store photos as the gateway does (DOGSEARCH_GATEWAY_*: the
    same photo directory, limits, embedder and search services)."""
    return create_celery(settings, lambda: connect_gallery(gateway).ingest)


def run_worker(*, concurrency: int, pool: str, loglevel: str = "INFO") -> None:
    settings = JobsSettings()
    if not settings.broker_url:
        raise SystemExit("dogsearch worker: set DOGSEARCH_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    app = worker_celery(settings, GatewaySettings())
    freeze_startup_objects()
    app.worker_main([
        "worker", f"--pool={pool}", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
        # No broadcast chatter between workers: they share nothing but the queue.
        "--without-gossip", "--without-mingle",
    ])
