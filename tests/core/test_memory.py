from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI

from dogsearch.core import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_malloc_is_tuned_once_and_its_settings_are_accepted(monkeypatch):
    monkeypatch.setattr(memory, "_done", False)
    calls = []
    real = ctypes.CDLL("libc.so.6").mallopt

    class Libc:
        @property
        def mallopt(self):
            def record(param, value):
                calls.append((param, value))
                return real(param, value)  # glibc answers 1 for each setting it takes
            return record

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: Libc())
    assert memory.tune_malloc() is True
    assert dict(calls) == memory.SETTINGS
    assert memory.tune_malloc() is True and len(calls) == len(memory.SETTINGS)  # the second call changes nothing



def test_an_app_once_started_has_frozen_the_objects_alive_and_keeps_its_lifespan_state():
    seen = []

    @asynccontextmanager
    async def lifespan(_):
        seen.append(("starting, frozen", gc.get_freeze_count()))
        yield {"model": "loaded"}
        seen.append(("stopped", None))

    app = memory.frozen_once_started(FastAPI(lifespan=lifespan))

    async def run() -> tuple[dict, int]:
        async with app.router.lifespan_context(app) as state:
            return state, gc.get_freeze_count()

    gc.unfreeze()
    try:
        state, frozen = asyncio.run(run())
    finally:
        gc.unfreeze()  # this test process's objects go back to the GC
    assert state == {"model": "loaded"}  # what a server puts in request.state
    assert seen == [("starting, frozen", 0), ("stopped", None)]
    assert frozen > 1000  # everything alive once started: this test process's modules, the app
