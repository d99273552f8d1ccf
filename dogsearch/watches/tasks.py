"""The check of new dogs against the watches as a Celery task, for when a broker is set: the gateway and the
workers enqueue it after they stored a batch of dogs, and a worker runs it. Acknowledged only after it ran
(acks_late) and back on the queue when its worker dies (reject_on_worker_lost; with Redis, after the visibility
timeout): a check run twice records each match once (WatchStore.record), so nothing is lost or sent twice. A check
whose worker dies every time it runs it (dogs whose vectors crash it, a worker out of memory) is counted, and past
`max_deliveries` it is given up (logged, and kept in the watch store with its dogs) instead of killing workers
forever."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import Callable

from celery import Celery

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.watches.watches import Watches

CHECK = "dogsearch.watches.check"
MAX_RETRIES = 8

log = logging.getLogger(__name__)


def check_key(entry_ids: list[str], attempt: int) -> str:
    """Names one delivery of a check (its dogs, and which retry it is: a retry is a new message, not a redelivery)."""
    return f"{hashlib.sha256(json.dumps(entry_ids).encode()).hexdigest()[:32]}:{attempt}"


def register_check(app: Celery, make_watches: Callable[[], Watches], max_deliveries: int) -> None:
    """Adds the check task to a worker's app; `make_watches` makes a worker thread's Watches (its own clients)."""
    local = threading.local()  # each worker thread: its own event loop and HTTP clients

    def thread_watches() -> tuple[asyncio.AbstractEventLoop, Watches]:
        if not hasattr(local, "loop"):
            local.loop = asyncio.new_event_loop()
            local.watches = make_watches()
        return local.loop, local.watches

    @app.task(name=CHECK, shared=False, bind=True, acks_late=True, reject_on_worker_lost=True,
              max_retries=MAX_RETRIES)
    def check(self, entry_ids: list[str]) -> int:
        loop, watches = thread_watches()
        key = check_key(entry_ids, self.request.retries)
        # counted before it runs: a check that kills its worker is redelivered (acks_late), and must not be forever
        deliveries = watches.store.deliver_check(key, entry_ids)
        if deliveries > max_deliveries:
            log.error("a check of %d new dogs stopped its worker %d times: given up", len(entry_ids), deliveries - 1)
            watches.store.give_up_check(key)
            return 0
        try:
            return loop.run_until_complete(watches.check(entry_ids))
        except (Unavailable, TimedOut) as exc:  # the search service is down or busy: later
            raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60)) from exc
        finally:
            watches.store.check_ran(key)
