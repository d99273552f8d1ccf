"""The embedded runner: with no broker configured, jobs run inside the serving process on its own event loop,
through the app's own Ingestor, calling the same job code (dogsearch.jobs.work) as a Celery worker.

Why not Celery with an in-memory transport: the in-process services are reached through ASGI clients bound to
the app's event loop, which Celery's worker threads would not share; and an in-memory queue would lose queued
batches on a restart anyway. Here the state is in SQLite, and active jobs are planned again at start-up
(files with an outcome are skipped), so a restart resumes them."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.core.outages import retry_delay
from dogsearch.gallery.ingest import Ingestor
from dogsearch.jobs.settings import JobsSettings
from dogsearch.jobs.store import JobStore
from dogsearch.jobs.work import batches, delivery_key, give_up, plan_items, poisoned, reason_of, run_batch

log = logging.getLogger("dogsearch.jobs")


class LocalRunner:
    def __init__(self, store: JobStore, ingestor: Ingestor, settings: JobsSettings) -> None:
        self.store, self.ingestor, self.settings = store, ingestor, settings
        self._queue: asyncio.Queue[tuple[str, list[list[Any]]]] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        for _ in range(self.settings.local_concurrency):
            self._spawn(self._work())
        for job_id in await asyncio.to_thread(self.store.active):
            await self.submit(job_id)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, job_id: str) -> None:
        self._spawn(self._plan(job_id))  # listing a big folder takes a while: not in the request

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _plan(self, job_id: str) -> None:
        items = await asyncio.to_thread(plan_items, self.store, job_id, self.settings.field_limits)
        for batch in batches(items or [], self.settings.batch_size):
            await self._queue.put((job_id, batch))

    async def _work(self) -> None:
        while True:
            job_id, batch = await self._queue.get()
            # While a batch waits for its services, this runner takes no other: the queue waits with it.
            give_up_at = None
            attempt = 0
            while True:
                # A batch that crashed this process (it runs again at start-up) is counted too.
                if await asyncio.to_thread(poisoned, self.store, job_id, batch, delivery_key(batch, attempt),
                                           self.settings.max_deliveries):
                    break
                try:
                    await run_batch(self.ingestor, self.store, job_id, batch, require_dog=self.settings.require_dog)
                    break
                except (Unavailable, TimedOut) as exc:  # the services are down or busy (a redeploy): later
                    give_up_at = give_up_at or time.monotonic() + self.settings.retry_window_s
                    if time.monotonic() >= give_up_at:
                        await asyncio.to_thread(give_up, self.store, job_id, batch, f"not indexed: {reason_of(exc)}")
                        break
                    await asyncio.sleep(retry_delay(attempt))
                    attempt += 1
                except Exception as exc:  # a bug must not stop the runner: the batch fails, loudly
                    log.exception("batch of job %s failed", job_id)
                    await asyncio.to_thread(give_up, self.store, job_id, batch, f"not indexed: {reason_of(exc)}")
                    break
