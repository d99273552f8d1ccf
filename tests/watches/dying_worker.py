"""`python -m tests.watches.dying_worker ARGS`: `dogsearch worker ARGS` whose process dies (os._exit, as the OOM
killer would end it) right after a check recorded its first new match, before the task is acknowledged: a worker
killed mid-check. Test-only: there is no way to make a real check die at that very point on demand."""
from __future__ import annotations

import os
import sys

from dogsearch.watches.store import WatchStore


def _record_then_die(record):
    def record_or_die(self, matches, body_of) -> int:
        new = record(self, matches, body_of)
        if new:
            os._exit(70)
        return new
    return record_or_die


if __name__ == "__main__":
    WatchStore.record = _record_then_die(WatchStore.record)
    from dogsearch.cli import main

    raise SystemExit(main(["worker", *sys.argv[1:]]))
