"""A model (or pipeline) built once, lazily or at start-up, behind a lock; the reason is kept when it fails."""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger("dogsearch.models")


class LazyModel(Generic[T]):
    def __init__(self, factory: Callable[[], T], name: str) -> None:
        self._factory, self.name = factory, name
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
        if self._value is not None:
            return self._value
        return await asyncio.get_running_loop().run_in_executor(None, self.get)

    def try_load(self) -> None:
        """For a background preload: failures are logged and kept for /readyz, not raised."""
        try:
            self.get()
        except Exception:
            log.exception("model failed to load", extra={"service": self.name})
