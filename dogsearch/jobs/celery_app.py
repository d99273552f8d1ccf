"""Celery app and tasks: `plan` lists a job's files and sends its batches, `index_batch` indexes one batch.

Batches are acknowledged only after they ran (acks_late) and go back to the queue when their worker dies
(reject_on_worker_lost; with Redis, after the visibility timeout), so a killed worker's batch runs again
elsewhere; the job code makes that second run count nothing twice.

Outages are waited out in the task that meets them, holding its message: a batch never asks the broker for a retry
while the broker is what is down (Celery drops a message whose retry it cannot publish), and one whose embedder is
down keeps its worker's slot, so the rest of the queue waits in Redis instead of failing through its retries
(dogsearch/core/outages.py, which the watches' check shares); so does an acknowledgement or a rejection that Celery
dropped as Redis died (BrokerTask). A message Redis itself lost as it died is sent again when its job stalls
(replan)."""
from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning, Reject
from celery.signals import celeryd_after_setup
from kombu.exceptions import OperationalError

from dogsearch.core.outages import Broker, BrokerTask
from dogsearch.gallery.ingest import Ingestor
from dogsearch.gallery.locks import LocksUnavailable
from dogsearch.jobs.settings import JobsSettings
from dogsearch.jobs.store import BrokerUnavailable, RedisJobStore
from dogsearch.jobs.threads import ThreadResources
from dogsearch.jobs.work import batches, delivery_key, give_up, plan_items, poisoned, reason_of, run_batch

PLAN = "dogsearch.jobs.plan"
INDEX_BATCH = "dogsearch.jobs.index_batch"

log = logging.getLogger("dogsearch.jobs")

# Redis does not answer: as the job store (BrokerUnavailable), as the photos' locks (LocksUnavailable), or as the
# broker a message is sent to (Celery raises kombu's OperationalError when a publish fails through its retries:
# announcing a batch's dogs, sending a batch).
BROKER_DOWN = (BrokerUnavailable, LocksUnavailable, OperationalError)


def _quiet_reconnect_warning(**_: Any) -> None:
    """Celery's warning at each connection loss without worker_cancel_long_running_tasks_on_connection_loss says the
    contrary of what create_celery sets it for (true of AMQP): ignored, and again once a worker has set up its
    logging, which puts every Celery deprecation warning ahead of this (four of them filled half a log's tail)."""
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5\.1 we introduced", category=CPendingDeprecationWarning)


celeryd_after_setup.connect(_quiet_reconnect_warning, weak=False)


def create_celery(settings: JobsSettings,
                  ingestor: Callable[[], AbstractAsyncContextManager[Ingestor]] | None = None) -> Celery:
    """`ingestor` makes a worker thread's Ingestor (where photos go, which services embed and store them), entered
    on the thread's event loop and left at the worker's shutdown (its clients closed; app.dogsearch_threads, which
    other tasks' per-thread resources share): only a worker needs one; a gateway only sends tasks."""
    if not settings.broker_url:
        raise ValueError("Celery needs DOGSEARCH_BROKER_URL (a redis:// URL)")
    app = Celery("dogsearch", broker=settings.broker_url, set_as_current=False, task_cls=BrokerTask)
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
            # The lock a worker takes to look for them: one killed holding it (kombu's default, 300 s) left a dead
            # worker's batch unseen that long (a test's 3 s visibility timeout, seen once). A second look at once is
            # harmless: each restore is a transaction on the message's unacked entry.
            "unacked_mutex_expire": max(1, min(300, settings.visibility_timeout_s // 3)),
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        # A batch that meets the broker down waits for it and goes on; its acknowledgement after the worker
        # reconnected still reaches Redis (kombu acks by delivery tag, from a new connection). Cancelling it would
        # only leave it to the visibility timeout (and a thread-pool task cannot be cancelled anyway).
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    _quiet_reconnect_warning()
    store = RedisJobStore(settings.broker_url, max_errors=settings.max_listed_errors,
                          bookkeeping_ttl_s=settings.visibility_timeout_s)
    app.dogsearch_store = store
    broker = app.dogsearch_broker = Broker(settings.visibility_timeout_s, store.ping, BROKER_DOWN)
    threads = ThreadResources(app)

    def thread_ingestor() -> tuple[asyncio.AbstractEventLoop, Ingestor]:
        if ingestor is None:
            raise RuntimeError("this Celery app sends tasks only: create_celery(..., ingestor=...) to run them")
        return threads.get("ingestor", ingestor)

    # shared=False: tasks are closures over this app's settings; another app in the process must not reuse them.
    @app.task(name=PLAN, shared=False, acks_late=True, reject_on_worker_lost=True)
    def plan(job_id: str) -> None:
        until = broker.lease_end()

        def listed() -> list[Any]:
            try:
                return plan_items(store, job_id, settings.field_limits) or []
            except BROKER_DOWN:
                raise
            except Exception as exc:  # a job that cannot start must say so, not stay "running"
                log.exception("planning job %s failed", job_id)
                store.fail(job_id, f"internal error: {reason_of(exc)}")
                return []

        for batch in batches(broker.through_outage(listed, until), settings.batch_size):
            broker.through_outage(lambda b=batch: index_batch.apply_async((job_id, b)), until)

    # max_retries=None: the retry window bounds them, not a count
    @app.task(name=INDEX_BATCH, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=None)
    def index_batch(self, job_id: str, batch: list[list[Any]], down_since: float | None = None) -> None:
        """`down_since`: when its services were first found down, in an earlier delivery (the retry window runs on)."""
        until = broker.lease_end()
        # Counted before it runs, once a delivery: a batch that kills its worker is redelivered (acks_late) and must
        # not be forever.
        key = delivery_key(batch, self.request.retries)
        if broker.through_outage(lambda: poisoned(store, job_id, batch, key, settings.max_deliveries), until):
            return
        loop, ing = thread_ingestor()

        def failed(exc: BaseException) -> None:
            give_up(store, job_id, batch, f"not indexed: {reason_of(exc)}")

        try:
            # the embedder or search service down or busy: waited for here, then by a new message (a retry: a
            # delivery key of its own, as it is no redelivery)
            broker.until_served(
                lambda: loop.run_until_complete(run_batch(ing, store, job_id, batch, require_dog=settings.require_dog)),
                until, down_since, settings.retry_window_s, failed,
                lambda countdown, since: index_batch.apply_async(
                    (job_id, batch), {"down_since": since}, countdown=countdown, retries=self.request.retries + 1))
        except Reject:
            raise
        except Exception as exc:  # e.g. the embedder now serves another model: the files fail, the job goes on
            log.exception("a batch of job %s failed", job_id)
            broker.through_outage(lambda e=exc: failed(e), until)

    return app


def replan(app: Celery, job: dict[str, Any]) -> bool:
    """Sends a stalled job's PLAN again, which sends the batches of its files without an outcome: one of them may
    have been lost (Redis killed between kombu's taking its message off the queue and recording it unacked: no
    worker has it, and nothing gives it back). Marked on the job first, atomically: of the gateway replicas whose
    sweeps find it stalled, one sends it. A batch still in flight that runs twice counts nothing twice."""
    if not app.dogsearch_store.replan(job["id"], job["replans"]):
        return False
    log.warning("job %s: no file finished for a while: planned again, for its files without an outcome", job["id"])
    app.send_task(PLAN, (job["id"],))
    return True
