"""A SQLite file that the threads of a process share through one connection behind a lock, and that processes on
one host share by WAL (a busy writer is waited for, up to ``timeout`` seconds)."""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


class SqliteFile:
    def __init__(self, path: Path, schema: str, *, synchronous: Literal["NORMAL", "FULL"],
                 timeout: float = 5.0) -> None:
        """``schema``: idempotent statements every process runs at start. ``synchronous``: FULL fsyncs each commit,
        NORMAL (with WAL) may lose the last commits on a power cut but never corrupts the file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=timeout)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.lock = threading.Lock()
        with self.lock:
            self.db.executescript(schema)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
