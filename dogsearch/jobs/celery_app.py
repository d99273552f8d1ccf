"""Celery app and tasks: `plan` lists a job's files and sends its batches, `index_batch` indexes one batch.

Batches are acknowledged only after they ran (acks_late) and go back to the queue when their worker dies
(reject_on_worker_lost; with Redis, after the visibility timeout), so a killed worker's batch runs again
elsewhere; the job code makes that second run count nothing twice."""
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.gallery.ingest import Ingestor
from dogsearch.jobs.settings import JobsSettings
from dogsearch.jobs.store import RedisJobStore
from dogsearch.jobs.work import batches, delivery_key, give_up, plan_items, poisoned, reason_of, run_batch

PLAN = "dogsearch.jobs.plan"
INDEX_BATCH = "dogsearch.jobs.index_batch"

log = logging.getLogger("dogsearch.jobs")


def create_celery(settings: JobsSettings, ingestor: Callable[[], Ingestor] | None = None) -> Celery:
    """`ingestor` makes a worker thread's Ingestor (where photos go, which services embed and store them): only a
    worker needs one; a gateway only sends tasks."""
    if not settings.broker_url:
        raise ValueError("Celery needs DOGSEARCH_BROKER_URL (a redis:// URL)")
    app = Celery("dogsearch", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a killed worker holds back at most one batch per slot
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            # Look for batches of dead workers a few times per timeout (kombu's default: every 100 s).
            "unacked_restore_interval": max(1, min(100, settings.visibility_timeout_s // 3)),
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )
    store = RedisJobStore(settings.broker_url, max_errors=settings.max_listed_errors,
                          bookkeeping_ttl_s=settings.visibility_timeout_s)
    app.dogsearch_store = store
    local = threading.local()  # each worker thread: its own event loop and HTTP clients

    def thread_ingestor() -> tuple[asyncio.AbstractEventLoop, Ingestor]:
        if not hasattr(local, "loop"):
            if ingestor is None:
                raise RuntimeError("this Celery app sends tasks only: create_celery(..., ingestor=...) to run them")
            local.loop = asyncio.new_event_loop()
            local.ingestor = ingestor()
        return local.loop, local.ingestor

    # shared=False: tasks are closures over this app's settings; another app in the process must not reuse them.
    @app.task(name=PLAN, shared=False, acks_late=True, reject_on_worker_lost=True)
    def plan(job_id: str) -> None:
        try:
            items = plan_items(store, job_id, settings.field_limits) or []
        except Exception as exc:  # a job that cannot start must say so, not stay "running"
            log.exception("planning job %s failed", job_id)
            store.fail(job_id, f"internal error: {reason_of(exc)}")
            return
        for batch in batches(items, settings.batch_size):
            index_batch.apply_async((job_id, batch))

    @app.task(name=INDEX_BATCH, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=settings.max_retries)
    def index_batch(self, job_id: str, batch: list[list[Any]]) -> None:
        # Counted before it runs: a batch that kills its worker is redelivered (acks_late) and must not be forever.
        if poisoned(store, job_id, batch, delivery_key(batch, self.request.retries), settings.max_deliveries):
            return
        loop, ing = thread_ingestor()
        try:
            loop.run_until_complete(run_batch(ing, store, job_id, batch, require_dog=settings.require_dog))
        except (Unavailable, TimedOut) as exc:  # the services are down or busy: later
            if self.request.retries >= settings.max_retries:
                give_up(store, job_id, batch, f"not indexed: {reason_of(exc)}")
                return
            raise self.retry(exc=exc, countdown=min(2**self.request.retries, 30)) from exc
        except Exception as exc:  # e.g. the embedder now serves another model: the files fail, the job goes on
            log.exception("a batch of job %s failed", job_id)
            give_up(store, job_id, batch, f"not indexed: {reason_of(exc)}")

    return app
