"""Memory set-up of a serving process: glibc's malloc for torch on a CPU, and the cyclic GC kept off start-up's
objects.

By default glibc gives each thread an arena of its own and hands freed memory back to the kernel as soon as a
few hundred KB lie free at the top of a heap. A forward allocates and frees ~100 MB of activations, so every
forward page-faults its memory in afresh: on 2 cores 35-40 % of the forward's CPU time went to the kernel. One
arena that keeps up to 256 MB of freed memory, grown 64 MB at a time, stops that: 1.4-1.8x the images per second
of EfficientNet-Lite0 on 2 and on 16 cores (docs/operations.md)."""
from __future__ import annotations

import ctypes
import gc
import logging
import sys
from contextlib import asynccontextmanager

log = logging.getLogger("dogsearch.memory")

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -2, -3, -8
SETTINGS = {
    _M_ARENA_MAX: 1,
    _M_MMAP_THRESHOLD: 32 << 20,  # glibc's largest: activations come from the heap, not fresh mappings
    _M_TRIM_THRESHOLD: 256 << 20,
    _M_TOP_PAD: 64 << 20,
}
_done = False


def tune_malloc() -> bool:
    """Applies SETTINGS once per process, before the inference threads allocate; False where the C library is not
    glibc (macOS, musl), which keeps its defaults."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in SETTINGS.items())
    if not _done:
        log.warning("mallopt refused a setting; malloc keeps glibc's defaults for it")
    return _done


def freeze_startup_objects() -> None:
    """Once a process has started (imports done, models loaded): every object alive now leaves the cyclic GC's
    view. Otherwise each full collection walks them all, ~0.5 M objects with torch loaded: 220-260 ms with the GIL
    held, a stall of every request and inference thread, about once per thousand photos a job ingests. Per process,
    not per app: what is frozen is never collected, so garbage is collected first."""
    gc.collect()
    gc.freeze()


def frozen_once_started(app):
    """The ASGI app (Starlette, FastAPI), changed to call freeze_startup_objects once its lifespan has started
    (models preloaded). For a process's one app: `dogsearch serve`, an in-process job run."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a):
        async with started(a) as state:
            freeze_startup_objects()
            yield state

    app.router.lifespan_context = lifespan
    return app
