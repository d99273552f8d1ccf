"""A SQLite file that the threads of a process share through one connection behind a lock, and that processes on
one host share by WAL (a busy writer is waited for, up to ``timeout`` seconds)."""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


def _to_wal(db: sqlite3.Connection, timeout: float) -> None:
    """WAL mode, waiting up to `timeout` for another process switching the file at the same time: SQLite answers
    that one "database is locked" at once, past its busy timeout (two gateway replicas started together on a new
    watch store: one of them exited)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class SqliteFile:
    def __init__(self, path: Path, schema: str, *, synchronous: Literal["NORMAL", "FULL"],
                 timeout: float = 5.0, added: Mapping[str, Mapping[str, str]] | None = None,
                 create: bool = True) -> None:
        """``schema``: idempotent statements every process runs at start. ``synchronous``: FULL fsyncs each commit,
        NORMAL (with WAL) may lose the last commits on a power cut but never corrupts the file. ``added``: {table:
        {column: its declaration}} of columns added to the schema's tables since files were made with them: a file
        from before gets them when it is opened. ``create``: False opens only a file that exists
        (sqlite3.OperationalError otherwise), making none."""
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        where = path if create else f"{path.resolve().as_uri()}?mode=rw"
        self.db = sqlite3.connect(where, check_same_thread=False, isolation_level=None, timeout=timeout, uri=not create)
        _to_wal(self.db, timeout)
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.lock = threading.Lock()
        with self.lock:
            self.db.executescript(schema)
        for table, columns in (added or {}).items():
            self._add_columns(table, columns)

    def _add_columns(self, table: str, columns: Mapping[str, str]) -> None:
        # in a write transaction: of two processes opening an older file at once, the second finds them there
        with self._transaction():
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, declared in columns.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declared}")

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
