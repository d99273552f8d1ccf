"""Progress of long work on stderr: tqdm's bar on a terminal; elsewhere (a batch job's log, CI, `| tee`) a plain
line now and then. tqdm writes a carriage-returned frame every refresh, which in a log file is one endless line (a
night's ingest at 4 frames a second: megabytes of it)."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

LOG_EVERY_S = 30.0


def progress_bar(total: int | None = None, *, desc: str, unit: str, enabled: bool = True,
                 file: TextIO | None = None, every_s: float = LOG_EVERY_S) -> Any:
    """A bar with tqdm's interface (total, n, update, set_postfix, set_postfix_str, refresh, close; a context
    manager): tqdm's own where ``file`` (stderr by default) is a terminal, else LogLines."""
    out = file or sys.stderr
    if enabled and _is_terminal(out):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit=unit, file=out)
    return LogLines(total, desc=desc, unit=unit, file=out if enabled else None, every_s=every_s)


def _is_terminal(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


class LogLines:
    """tqdm's interface as a line at most every ``every_s`` seconds, and one at the end: "indexing: 1200/40000
    photo (3%), 9.8 photo/s, indexed=1190, failed=10". ``file`` None: silent."""

    def __init__(self, total: int | None, *, desc: str, unit: str, file: TextIO | None, every_s: float) -> None:
        self.total, self.n = total, 0
        self._desc, self._unit, self._file, self._every_s = desc, unit, file, every_s
        self._postfix = ""
        self._start = self._last = time.monotonic()
        self._said_n: int | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        self.refresh()

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()), refresh=refresh)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self._postfix = s
        if refresh:
            self.refresh()

    def refresh(self) -> None:
        if time.monotonic() - self._last >= self._every_s:
            self._say()

    def close(self) -> None:
        if self._said_n != self.n:
            self._say()
        self._file = None  # as tqdm: nothing more after close

    def _say(self) -> None:
        now = time.monotonic()
        self._last = now
        if self._file is None:
            return
        self._said_n = self.n
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n // self.total}%)" if self.total else ""
        rate = self.n / (now - self._start) if now > self._start else 0.0
        postfix = f", {self._postfix}" if self._postfix else ""
        print(f"{self._desc}: {count} {self._unit}{share}, {rate:.1f} {self._unit}/s{postfix}", file=self._file,
              flush=True)

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
