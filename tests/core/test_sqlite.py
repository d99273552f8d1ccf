"""core/sqlite.py's SqliteFile, opened by several processes at once, as gateway replicas and workers open one watch
or job store."""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from dogsearch.core.sqlite import SqliteFile

SCHEMA = "CREATE TABLE IF NOT EXISTS things (id TEXT PRIMARY KEY);"


def _open(path: str, barrier) -> None:
    barrier.wait()
    try:
        SqliteFile(Path(path), SCHEMA, synchronous="FULL", timeout=30)
    except Exception as exc:  # noqa: BLE001 (the exit code tells the test)
        print(f"{type(exc).__name__}: {exc}", flush=True)
        os._exit(1)
    os._exit(0)


def test_processes_opening_a_new_file_at_once_all_open_it(tmp_path):
    """Three processes open a file none has made yet, at the same instant, sixty times: each opens it (SQLite
    answered one of two switching a new file to WAL together "database is locked" at once, whatever its busy
    timeout: 4 of 90 opens failed here, and 26 of 300)."""
    fork = multiprocessing.get_context("fork")
    codes = []
    for n in range(60):
        barrier = fork.Barrier(3)
        procs = [fork.Process(target=_open, args=(str(tmp_path / f"{n}.db"), barrier)) for _ in range(3)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
            codes.append(proc.exitcode)
    assert codes == [0] * 180, f"{codes.count(1)} of 180 opens failed"
