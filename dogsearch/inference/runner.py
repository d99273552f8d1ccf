"""A model (or pipeline) built once, lazily or at start-up, behind a lock, the reason kept when it fails and the
build tried again after a back-off; and the same with its inference batched dynamically off the event loop."""
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


class _BackingOff(ModelUnavailable):
    """The model failed to load a moment ago and waits out its back-off before it is tried again."""


class LazyModel(Generic[T]):
    """A model built on first use (or by a preload), once, behind a lock. A build that fails is tried again, by the
    next request or readiness probe that finds its back-off over: `retry_s` after the first failure, twice as long
    after each further one, at most `retry_max_s`, so a model whose weights were briefly unreadable (another replica
    still filling a shared cache) comes up without a restart, and a broken one is not rebuilt in a tight loop.
    Meanwhile requests fail at once with the last error and when the next try is due."""

    def __init__(self, factory: Callable[[], T], name: str, executor: Executor | None = None,
                 unavailable: str = "model unavailable", *, retry_s: float = 5.0, retry_max_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`unavailable`: how ModelUnavailable's reason starts."""
        self._factory, self.name, self._executor, self._unavailable = factory, name, executor, unavailable
        self._retry_s, self._retry_max_s, self._clock = retry_s, max(retry_s, retry_max_s), clock
        self._value: T | None = None
        self._error: Exception | None = None
        self._failures = 0
        self._retry_at = 0.0  # on `clock`: when the next build may start
        self._lock = threading.Lock()
        self._retry_scheduled = False

    @property
    def loaded(self) -> T | None:
        return self._value

    @property
    def error(self) -> Exception | None:
        return self._error

    @property
    def retry_in(self) -> float | None:
        """Seconds until a failed build may be tried again (0: now); None while none has failed."""
        return None if self._error is None else max(0.0, self._retry_at - self._clock())

    def failure(self, trying: bool | None = None) -> str | None:
        """The last failed build's error, how many builds failed and when the next may start; None while none has
        failed (or once one succeeded). `trying`: whether one is being tried now (None: see whether one is)."""
        error, retry_in = self._error, self.retry_in
        if error is None or retry_in is None:
            return None
        if trying is None:
            trying = self._lock.locked() or self._retry_scheduled
        tries = f"{self._failures} tries" if self._failures > 1 else "1 try"
        when = "trying again now" if trying else (
            f"next try in {max(1, round(retry_in))} s" if retry_in else "next try at the next request or probe")
        return f"{error} ({tries}; {when})"

    def get(self) -> T:
        if self._value is None:
            with self._lock:  # concurrent first requests build it once; the others wait for it
                if self._value is None:
                    if self._error is not None and self._clock() < self._retry_at:
                        raise _BackingOff(self.failure(trying=False) or str(self._error)) from self._error
                    self._build()
        return self._value

    def _build(self) -> None:
        start = time.perf_counter()
        try:
            self._value = self._factory()
        except Exception as exc:
            self._error, self._failures = exc, self._failures + 1
            self._retry_at = self._clock() + min(self._retry_max_s, self._retry_s * 2 ** (self._failures - 1))
            raise
        if self._error is not None:
            log.info("model loaded after failing", extra={"service": self.name, "failures": self._failures})
        self._error, self._failures = None, 0
        log.info("model loaded", extra={"service": self.name, "model": getattr(self._value, "model_id", None),
                                        "seconds": round(time.perf_counter() - start, 2)})

    async def aget(self) -> T:
        """The model, built on its own thread the first time; ModelUnavailable with the reason when it cannot be,
        and how long until the next build may start (the caller's Retry-After: none is tried before)."""
        if self._value is not None:
            return self._value
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.get)
        except _BackingOff as exc:  # the reason already says what failed
            raise ModelUnavailable(f"{self._unavailable}: {exc.reason}",
                                   retry_after_s=self.retry_in) from exc.__cause__
        except Exception as exc:
            raise ModelUnavailable(f"{self._unavailable}: {exc}", retry_after_s=self.retry_in) from exc

    def try_load(self) -> None:
        """For a background preload or retry: failures are logged and kept for /readyz, not raised."""
        try:
            self.get()
        except _BackingOff:
            pass  # logged when it failed
        except Exception:
            log.exception("model failed to load", extra={"service": self.name, "failures": self._failures,
                                                         "retry_in_s": round(self.retry_in or 0, 1)})
        finally:
            self._retry_scheduled = False

    def retry_if_due(self) -> None:
        """After a failed build whose back-off is over, and none running: try again in the background (for
        readiness probes, which behind a balancer may be all a not-ready replica gets)."""
        if self._error is None or self.retry_in or self._retry_scheduled or self._lock.locked():
            return
        self._retry_scheduled = True
        if self._executor is not None:
            self._executor.submit(self.try_load)
        else:
            threading.Thread(target=self.try_load, name=f"{self.name}-load", daemon=True).start()


class BatchedModel(LazyModel[T], Generic[T, I, R]):
    """A LazyModel built and run on its own inference threads (`inference_pool`), its requests joined by a
    DynamicBatcher that runs up to `replicas` batches at once, one per thread, all on the one model.
    `run_batch(model, items)` does all the model's work for a batch."""

    def __init__(self, factory: Callable[[], T], name: str, run_batch: Callable[[T, list[I]], Sequence[R]], *,
                 max_batch_size: int, max_wait_s: float, max_queue: int, timeout_s: float, replicas: int = 1,
                 torch_threads: int | None = None, unavailable: str = "model unavailable", retry_s: float = 5.0,
                 retry_max_s: float = 300.0) -> None:
        super().__init__(factory, name, inference_pool(name, replicas, torch_threads), unavailable, retry_s=retry_s,
                         retry_max_s=retry_max_s)
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
        """None when ready, else why not. A model that failed to load is tried again from here once its back-off is
        over: behind a balancer that routes by readiness, a replica that is not ready gets no requests to do it."""
        if self.loaded is not None:
            return None
        if self.error is not None:
            self.retry_if_due()
            return f"{self.name} model failed to load: {self.failure()}"
        if preload:
            return "model loading"
        return None if lazy_is_ready else "model not loaded yet (loads on the first request)"

