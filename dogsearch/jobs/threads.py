"""What each thread of a Celery worker makes once and keeps: an event loop, and the resources entered on it (a
batch's Ingestor, a check's Watches: their HTTP clients, locks, files), all left at the worker's shutdown."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, TypeVar

from celery import Celery
from celery.signals import worker_process_shutdown, worker_shutdown

T = TypeVar("T")


class ThreadResources:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self._local = threading.local()
        self._made: list[tuple[asyncio.AbstractEventLoop, AsyncExitStack]] = []  # every thread's, left at shutdown
        app.dogsearch_threads = self  # the signals hold close weakly: it goes with the app
        worker_shutdown.connect(self.close)
        worker_process_shutdown.connect(self.close)

    def get(self, name: str, make: Callable[[], AbstractAsyncContextManager[T]]) -> tuple[asyncio.AbstractEventLoop, T]:
        """The calling thread's event loop and its resource `name`, entered from `make()` on that loop the first
        time (where entering it raises, nothing is kept: the next call tries again)."""
        local = self._local
        if not hasattr(local, "loop"):
            local.loop, local.stack, local.entered = asyncio.new_event_loop(), AsyncExitStack(), {}
            self._made.append((local.loop, local.stack))
        if name not in local.entered:
            local.entered[name] = local.loop.run_until_complete(local.stack.enter_async_context(make()))
        return local.loop, local.entered[name]

    def close(self, sender: Any = None, **_: Any) -> None:
        """At a worker's shutdown, once its pool stopped (threads, solo), or a prefork child's exit: each thread's
        resources left on its event loop, which no thread runs any more, in the reverse order of their making."""
        if getattr(sender, "app", self.app) is not self.app:  # another app's worker in this process
            return
        while self._made:
            loop, stack = self._made.pop()
            loop.run_until_complete(stack.aclose())
            loop.close()
