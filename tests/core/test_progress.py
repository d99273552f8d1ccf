"""Progress where stderr is no terminal: a plain line now and then, not tqdm's carriage-returned frames."""
from __future__ import annotations

import io

from dogsearch.core import progress
from dogsearch.core.progress import progress_bar


def test_a_log_gets_a_line_at_most_every_interval_and_one_at_the_end(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    log = io.StringIO()
    with progress_bar(1000, desc="indexing", unit="photo", file=log, every_s=30) as bar:
        for _ in range(400):  # 400 photos in 50 s: one line at 30 s, none for every photo
            now[0] += 0.125
            bar.update(1)
            bar.set_postfix(indexed=bar.n, failed=0)
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert lines == ["indexing: 240/1000 photo (24%), 8.0 photo/s, indexed=239, failed=0",
                     "indexing: 400/1000 photo (40%), 8.0 photo/s, indexed=400, failed=0"]


def test_a_count_without_a_total_and_a_disabled_bar() -> None:
    log = io.StringIO()
    bar = progress_bar(desc="reindex", unit="photo", file=log)
    bar.update(5)
    bar.close()
    bar.update(1)  # after close, as tqdm: nothing more
    assert log.getvalue().startswith("reindex: 5 photo, ")
    assert log.getvalue().count("\n") == 1
    quiet = io.StringIO()
    with progress_bar(10, desc="x", unit="photo", file=quiet, enabled=False) as bar:
        bar.update(10)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_tqdm() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = progress_bar(3, desc="indexing", unit="photo", file=Tty())
    assert type(bar).__name__ == "tqdm"
    bar.close()
