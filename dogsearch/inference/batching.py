"""A dynamic batcher: requests that arrive together run as one batch (LitServe-style).

Each request carries one or more items. The batcher gathers items until `max_batch_size` or until
`max_wait_s` passed since the first one, runs `fn` on them off the event loop, and hands each request its
part of the results. Up to `concurrency` batches run at once (one per model replica); while all run, the next
batch keeps filling. The queue is bounded (QueueFull: come back later) and a request that waits too long
gives up (BatchTimeout)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from prometheus_client import Histogram

from dogsearch.core.errors import TimedOut, Unavailable

T = TypeVar("T")
R = TypeVar("R")

BATCH_SIZE = Histogram("dogsearch_batch_size", "items per batch run", ["batcher"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))
QUEUE_WAIT = Histogram("dogsearch_batch_queue_wait_seconds", "time from arrival to the start of its batch",
                       ["batcher"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
# A batch's run on its inference thread: wall time, and that thread's CPU time. Their sum over the wall time of a
# load and the replicas says how busy the replicas were; wall well over CPU, that the thread waited for a core.
RUN = Histogram("dogsearch_batch_run_seconds", "wall time of a batch's run", ["batcher"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RUN_CPU = Histogram("dogsearch_batch_run_cpu_seconds", "CPU time of the thread that ran a batch", ["batcher"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


class QueueFull(Unavailable):
    """Too many items waiting: the caller should retry later."""


class BatchTimeout(TimedOut):
    """The request waited longer than its timeout."""


@dataclass
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class DynamicBatcher(Generic[T, R]):
    def __init__(self, fn: Callable[[list[T]], Sequence[R]], *, name: str, max_batch_size: int, max_wait_s: float,
                 max_queue: int, timeout_s: float, executor: Executor | None = None, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self._fn, self.name = fn, name
        self.max_batch_size, self.max_wait_s, self.concurrency = max_batch_size, max_wait_s, concurrency
        self.max_queue, self.timeout_s = max_queue, timeout_s
        self._executor = executor
        self._pending: list[_Request[T, R]] = []
        self._queued_items = 0
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results in the order of `items`. A request larger than a batch is split over several batches."""
        if not items:
            return []
        if self._queued_items + len(items) > self.max_queue:
            raise QueueFull(f"{self.name}: {self._queued_items} items queued, limit {self.max_queue}")
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        parts = [items[i:i + self.max_batch_size] for i in range(0, len(items), self.max_batch_size)]
        requests = [_Request(part, loop.create_future()) for part in parts]
        self._pending.extend(requests)
        self._queued_items += len(items)
        self._wakeup.set()
        gathered = asyncio.gather(*(r.future for r in requests))
        gathered.add_done_callback(_read)  # a caller gone (cancelled) leaves no error behind unread
        try:
            results = await asyncio.wait_for(gathered, self.timeout_s)
        except TimeoutError as exc:
            for r in requests:
                r.future.cancel()  # the worker skips cancelled requests still in the queue
            raise BatchTimeout(f"{self.name}: no result within {self.timeout_s:g} s") from exc
        return [result for part in results for result in part]

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                await slots.acquire()  # a free replica first: meanwhile the next batch fills
                batch = await self._collect()
                if not batch:
                    slots.release()
                    continue
                task = asyncio.get_running_loop().create_task(self._run_batch(batch, slots))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _run_batch(self, batch: list[_Request[T, R]], slots: asyncio.Semaphore) -> None:
        try:
            items = [item for r in batch for item in r.items]
            now = time.monotonic()
            for r in batch:
                QUEUE_WAIT.labels(self.name).observe(now - r.arrived)
            BATCH_SIZE.labels(self.name).observe(len(items))
            try:
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self._timed, items)
            except Exception as exc:  # every request of the batch gets the error
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                return
            start = 0
            for r in batch:
                part = list(results[start:start + len(r.items)])
                start += len(r.items)
                if not r.future.done():
                    r.future.set_result(part)
        finally:
            slots.release()

    def _timed(self, items: list[T]) -> Sequence[R]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._fn(items)
        finally:
            RUN_CPU.labels(self.name).observe(time.thread_time() - cpu)
            RUN.labels(self.name).observe(time.perf_counter() - wall)

    async def _collect(self) -> list[_Request[T, R]]:
        """Waits up to max_wait_s after the oldest request for the batch to fill, then takes what fits."""
        deadline = self._pending[0].arrived + self.max_wait_s
        while self._count_live() < self.max_batch_size and (delay := deadline - time.monotonic()) > 0:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                break
        batch, size = [], 0
        while self._pending and size + len(self._pending[0].items) <= self.max_batch_size:
            r = self._pending.pop(0)
            self._queued_items -= len(r.items)
            if r.future.cancelled():
                continue
            batch.append(r)
            size += len(r.items)
        return batch

    def _count_live(self) -> int:
        return sum(len(r.items) for r in self._pending if not r.future.cancelled())

    async def aclose(self) -> None:
        for task in [self._worker, *self._running]:
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass


def _read(done: asyncio.Future) -> None:
    if not done.cancelled():
        done.exception()
