"""The check of new dogs against the watches as a Celery task, for when a broker is set: the gateway and the
workers enqueue it after they stored a batch of dogs, and a worker runs it. Acknowledged only after it ran
(acks_late) and back on the queue when its worker dies (reject_on_worker_lost; with Redis, after the visibility
timeout): a check run twice records each match once (WatchStore.record), so nothing is lost or sent twice."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from celery import Celery

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.watches.watches import Watches

CHECK = "dogsearch.watches.check"
MAX_RETRIES = 8


def register_check(app: Celery, make_watches: Callable[[], Watches]) -> None:
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
        try:
            return loop.run_until_complete(watches.check(entry_ids))
        except (Unavailable, TimedOut) as exc:  # the search service is down or busy: later
            raise self.retry(exc=exc, countdown=min(2 ** self.request.retries, 60)) from exc
