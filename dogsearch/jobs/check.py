"""Jobs that will never finish: queued or running, and no progress for longer than a worker's lease allows. A batch
held by a live worker records its files' outcomes, or goes back to the queue after the visibility timeout when its
worker died; a job with no outcome recorded for longer than that (twice, by default) has nothing working on it (its
messages lost with the broker, its process gone for good). `dogsearch check --repair` fails them with the reason, so
they stop counting as active."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dogsearch.jobs.store import JobStore


def last_progress(job: dict[str, Any]) -> datetime:
    """When the job last moved: its last recorded outcome, else its start, else its creation."""
    stamp = job.get("updated_at") or job.get("started_at") or job["created_at"]
    return datetime.fromisoformat(stamp)


def stuck_jobs(store: JobStore, stuck_after_s: float, now: datetime | None = None) -> list[dict[str, Any]]:
    """{"id", "state", "last_progress"} of the active jobs without progress for `stuck_after_s` (blocking)."""
    now = now or datetime.now(UTC)
    found = []
    for job_id in store.active():
        job = store.get(job_id)
        if job is None or job["state"] not in ("queued", "running"):
            continue
        moved = last_progress(job)
        if (now - moved).total_seconds() > stuck_after_s:
            found.append({"id": job_id, "state": job["state"], "last_progress": moved.isoformat()})
    return found


def fail_stuck(store: JobStore, stuck: list[dict[str, Any]], stuck_after_s: float) -> int:
    """Fails each stuck job (one that moved since it was found is left alone); how many were failed (blocking)."""
    failed = 0
    for found in stuck:
        job = store.get(found["id"])
        if job is None or last_progress(job).isoformat() != found["last_progress"]:
            continue
        store.fail(found["id"], f"no progress for over {stuck_after_s:.0f} s and no worker holds it: failed by "
                                "dogsearch check --repair; submit the job again to index what is left")
        failed += 1
    return failed
