"""Stuck jobs: queued or running, and no outcome recorded for longer than a worker's lease allows. Found on both
job stores; `fail_stuck` fails them with the reason, and leaves a job that moved since it was found alone."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from dogsearch.jobs.check import fail_stuck, stuck_jobs
from dogsearch.jobs.store import RedisJobStore, SqliteJobStore, new_job
from tests.jobs.servers import REDIS_URL


@pytest.fixture(params=["redis", "sqlite"])
def store(request, tmp_path, redis_clean):
    s = RedisJobStore(REDIS_URL) if request.param == "redis" else SqliteJobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def job(job_id: str) -> dict:
    return new_job(job_id, source="path", path="/x", root="/x", labels=None, payload={}, roots=["/x"])


def test_a_job_without_progress_for_too_long_is_stuck_and_failed_with_the_reason(store):
    for job_id in ("moving", "silent", "done"):
        store.create(job(job_id))
        store.start(job_id, 3)
    store.record("done", [(f, "indexed", None) for f in "abc"])
    later = datetime.now(UTC) + timedelta(seconds=100)
    assert stuck_jobs(store, 1000, later) == []  # within the lease: a worker may hold its batch
    store.record("moving", [("a", "indexed", None)])  # progress stamps it
    stuck = stuck_jobs(store, 50, later)
    assert [s["id"] for s in stuck] == ["moving", "silent"]
    assert stuck_jobs(store, 50, datetime.now(UTC)) == []
    time.sleep(0.01)  # stamps are in milliseconds
    store.record("moving", [("b", "indexed", None)])  # moved since it was found: left alone
    assert fail_stuck(store, stuck, 50) == 1
    assert store.state("moving") == "running"
    failed = store.get("silent")
    assert failed["state"] == "failed" and "no progress for over 50 s" in failed["error"]
