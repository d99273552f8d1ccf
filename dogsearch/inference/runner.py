"""A model (or pipeline) built once, lazily or at start-up, behind a lock, the reason kept when it fails; and
the same with its inference batched dynamically off the event loop."""
from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

from dogsearch.core.errors import Unavailable
from dogsearch.inference.batching import DynamicBatcher

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (an input item)
R = TypeVar("R")
log = logging.getLogger("dogsearch.models")


def inference_pool(name: str, replicas: int, torch_threads: int | None) -> ThreadPoolExecutor:
    """The threads a model is built and run on: `replicas` of them, each pinned to an intra-op team of
    `torch_threads` (None: torch's default, all cores). Each calling thread gets an OpenMP team of its own, so
    replicas x threads should not exceed the cores: two teams of two on two cores slow every forward down about
    twice. On a CPU, replicas of one thread each run the most images per second (scripts/cpu-thread-layout.py)."""
    def pin_threads() -> None:
        _name_os_thread(f"{name}-inf")
        if torch_threads is None:
            return
        import torch

        torch.get_num_threads()  # torch sizes a new thread's team on its first use: let it, then set ours
        torch.set_num_threads(torch_threads)

    return ThreadPoolExecutor(max_workers=replicas, thread_name_prefix=f"{name}-inference", initializer=pin_threads)


def _name_os_thread(name: str) -> None:
    """The calling thread's name as the OS shows it (top -H, /proc/PID/task/TID/comm; 15 bytes): which threads of a
    service burn the CPU is then plain to see. Linux only; elsewhere nothing."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class ModelUnavailable(Unavailable):
    """The model could not be built (missing weights, a package not installed, a bad device): the reason says."""


class LazyModel(Generic[T]):
    def __init__(self, factory: Callable[[], T], name: str, executor: Executor | None = None,
                 unavailable: str = "model unavailable") -> None:
        """`unavailable`: how ModelUnavailable's reason starts."""
        self._factory, self.name, self._executor, self._unavailable = factory, name, executor, unavailable
        self._value: T | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> T | None:
        return self._value

    @property
    def error(self) -> Exception | None:
        return self._error

    def get(self) -> T:
        if self._value is None:
            with self._lock:  # concurrent first requests build it once; the others wait for it
                if self._value is None:
                    start = time.perf_counter()
                    try:
                        self._value = self._factory()
                    except Exception as exc:
                        self._error = exc
                        raise
                    self._error = None
                    log.info("model loaded", extra={"service": self.name,
                                                    "model": getattr(self._value, "model_id", None),
                                                    "seconds": round(time.perf_counter() - start, 2)})
        return self._value

    async def aget(self) -> T:
        """The model, built on its own thread the first time; ModelUnavailable with the reason when it cannot be."""
        if self._value is not None:
            return self._value
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.get)
        except Exception as exc:
            raise ModelUnavailable(f"{self._unavailable}: {exc}") from exc

    def try_load(self) -> None:
        """For a background preload: failures are logged and kept for /readyz, not raised."""
        try:
            self.get()
        except Exception:
            log.exception("model failed to load", extra={"service": self.name})


class BatchedModel(LazyModel[T], Generic[T, I, R]):
    """A LazyModel built and run on its own inference threads (`inference_pool`), its requests joined by a
    DynamicBatcher that runs up to `replicas` batches at once, one per thread, all on the one model.
    `run_batch(model, items)` does all the model's work for a batch."""

    def __init__(self, factory: Callable[[], T], name: str, run_batch: Callable[[T, list[I]], Sequence[R]], *,
                 max_batch_size: int, max_wait_s: float, max_queue: int, timeout_s: float, replicas: int = 1,
                 torch_threads: int | None = None, unavailable: str = "model unavailable") -> None:
        super().__init__(factory, name, inference_pool(name, replicas, torch_threads), unavailable)
        self.batcher: DynamicBatcher[I, R] = DynamicBatcher(
            lambda items: run_batch(self.get(), items), name=name, max_batch_size=max_batch_size,
            max_wait_s=max_wait_s, max_queue=max_queue, timeout_s=timeout_s, executor=self._executor,
            concurrency=replicas,
        )

    async def submit(self, items: Sequence[I]) -> list[R]:
        """Results for `items`; QueueFull when too many wait, BatchTimeout when they waited too long."""
        await self.aget()
        return await self.batcher.submit(items)

    @asynccontextmanager
    async def running(self, preload: bool) -> AsyncIterator[None]:
        """The app's lifespan: with `preload`, load in the background so /healthz answers at once and /readyz
        turns 200 when done."""
        loop = asyncio.get_running_loop()
        loading = loop.run_in_executor(self._executor, self.try_load) if preload else None
        try:
            yield
        finally:
            if loading is not None:
                await loading
            await self.batcher.aclose()

    def readiness(self, preload: bool, lazy_is_ready: bool = False) -> str | None:
        if self.loaded is not None:
            return None
        if self.error is not None:
            return f"{self.name} model failed to load: {self.error}"
        if preload:
            return "model loading"
        return None if lazy_is_ready else "model not loaded yet (loads on the first request)"

