"""The check of new dogs against the watches as a Celery task, for when a broker is set: the gateway and the
workers enqueue it after they stored a batch of dogs, and a worker runs it. Acknowledged only after it ran
(acks_late) and back on the queue when its worker dies (reject_on_worker_lost; with Redis, after the visibility
timeout): a check run twice records each match once (WatchStore.record), so nothing is lost or sent twice. A check
whose worker dies every time it runs it (dogs whose vectors crash it, a worker out of memory) is counted, and past
`max_deliveries` it is given up (logged, and kept in the watch store with its dogs) instead of killing workers
forever.

A check whose search service is down waits for it as a job's batch does (dogsearch/core/outages.py): in its worker,
then as a new message of its own, never through a retry Celery would drop with Redis down too; and past
`retry_window_s` it is given up as a check that kills its workers is, not acknowledged as if it had run.

A worker that finds no watch store its gateway made (`make_watches` raises StoreMissing: another data folder or
watches path than the gateway's, another machine, or started before the gateway made it) refuses the check: it is
sent again as a new message (logged, a Celery retry), for this worker or another, without holding the worker's slot
meanwhile, until the store is there; past `retry_window_s` it fails (logged with its dogs: with no store there is
nowhere to keep it), never counted as done."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import NoReturn

from celery import Celery
from celery.exceptions import Retry

from dogsearch.core.outages import Broker, retry_delay
from dogsearch.watches.store import StoreMissing
from dogsearch.watches.watches import Watches

CHECK = "dogsearch.watches.check"

log = logging.getLogger(__name__)


def check_key(entry_ids: list[str], attempt: int) -> str:
    """Names one delivery of a check (its dogs, and which retry it is: a retry is a new message, not a redelivery)."""
    return f"{hashlib.sha256(json.dumps(entry_ids).encode()).hexdigest()[:32]}:{attempt}"


def register_check(app: Celery, thread_watches: Callable[[], tuple[asyncio.AbstractEventLoop, Watches]],
                   broker: Broker, max_deliveries: int, retry_window_s: float) -> None:
    """Adds the check task to a worker's app; `thread_watches` gives the calling worker thread's event loop and
    Watches (its own clients, closed at the worker's shutdown), or raises StoreMissing (nothing kept: the next check
    looks again)."""
    # max_retries=None: the retry window bounds them, not a count
    @app.task(name=CHECK, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
    def check(self, entry_ids: list[str], down_since: float | None = None, no_store_since: float | None = None) -> int:
        """`down_since`: when its search service was first found down, in an earlier delivery (the window runs on);
        `no_store_since`: when an earlier delivery found no watch store."""
        until = broker.lease_end()
        try:
            loop, watches = thread_watches()
        except StoreMissing as exc:
            no_store(self, entry_ids, down_since, no_store_since or time.time(), exc, until)
        key = check_key(entry_ids, self.request.retries)
        # counted before it runs: a check that kills its worker is redelivered (acks_late), and must not be forever
        deliveries = watches.store.deliver_check(key, entry_ids)
        if deliveries > max_deliveries:
            log.error("a check of %d new dogs stopped its worker %d times: given up", len(entry_ids), deliveries - 1)
            watches.store.give_up_check(key, f"it stopped its worker {deliveries - 1} times")
            return 0

        def given_up(exc: BaseException) -> None:
            log.error("a check of %d new dogs found its search service down for %d s: given up (%s)",
                      len(entry_ids), retry_window_s, exc)
            watches.store.give_up_check(key, f"its search service was down for {retry_window_s:.0f} s ({exc})")

        try:
            return broker.until_served(
                lambda: loop.run_until_complete(watches.check(entry_ids)), until, down_since, retry_window_s,
                given_up, lambda countdown, since: check.apply_async(
                    (entry_ids,), {"down_since": since}, countdown=countdown, retries=self.request.retries + 1)) or 0
        finally:
            watches.store.check_ran(key)

    def no_store(task, entry_ids: list[str], down_since: float | None, since: float, exc: StoreMissing,
                 until: float) -> NoReturn:
        """Refuses a check with no watch store here: sent again (a Celery retry, logged as one), or past the window
        failed; raises either way, so it is never counted as done."""
        waited = time.time() - since  # wall clock: a later delivery may run on another worker
        if waited >= retry_window_s:
            log.error("a check of %d new dogs found no watch store for %d s: it fails, and their alerts are not sent "
                      "(%s); its dogs: %s", len(entry_ids), waited, exc, " ".join(entry_ids))
            raise exc
        countdown = retry_delay(task.request.retries)
        log.warning("a check of %d new dogs cannot run on this worker: %s; sent again in %.0f s (waiting for the "
                    "store up to %d s more)", len(entry_ids), exc, countdown, retry_window_s - waited)
        broker.through_outage(lambda: check.apply_async(
            (entry_ids,), {"down_since": down_since, "no_store_since": since}, countdown=countdown,
            retries=task.request.retries + 1), until)
        raise Retry(exc=exc, when=countdown)
