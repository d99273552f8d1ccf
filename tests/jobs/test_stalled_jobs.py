"""A job with no file finished for DOGSEARCH_JOBS_STALL_TIMEOUT_S, with a broker: planned again (a message of it may
have been lost to a Redis crash), by one gateway replica, and failed when it stalls again with none finished since."""

from __future__ import annotations

import asyncio
import json

import pytest
from celery.contrib.testing.worker import start_worker

from dogsearch.jobs.celery_app import INDEX_BATCH, PLAN
from dogsearch.jobs.service import Jobs
from dogsearch.services.gateway.app import create_app
from dogsearch.services.worker import worker_celery
from tests.fakes import serving
from tests.jobs.helpers import all_dogs, wait_job


@pytest.fixture
def stalling(settings):
    """The tests' settings, with a job stalled after 5 s without a file finished."""
    jobs, gateway = settings
    return jobs.model_copy(update={"stall_timeout_s": 5}), gateway


def queued_tasks(redis_clean) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis_clean.lrange("celery", 0, -1)]


async def test_a_batch_lost_to_the_broker_is_sent_again_and_the_job_finishes(stalling, redis_clean, photos):
    """kombu takes a message off the queue and records it unacknowledged in two steps: Redis killed between them
    loses it (no worker has it, nothing gives it back). Here a batch is taken off the queue before any worker sees
    it: the job stalls, is planned again with the files that have no outcome, and finishes with every photo."""
    jobs, gateway = stalling
    worker = worker_celery(jobs, gateway)
    async with serving(create_app(gateway, jobs_settings=jobs)) as client:
        r = await client.post("/v1/jobs/index", json={"path": str(photos)})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        # its plan run here instead of the gateway's message, so that a batch is lost before a worker starts
        redis_clean.delete("celery")
        await asyncio.to_thread(worker.tasks[PLAN], job_id)
        assert queued_tasks(redis_clean) == [INDEX_BATCH] * 5  # 40 photos, batches of 8
        redis_clean.rpop("celery")  # the first one sent
        with start_worker(worker, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=20):
            job = await wait_job(client, job_id, timeout=90)
        assert job["state"] == "done", job
        assert (job["total"], job["indexed"], job["duplicates"], job["failed"]) == (40, 40, 0, 0), job
        assert job["replans"] >= 1, job
        assert len(await all_dogs(client)) == 40


async def test_a_stalled_job_is_planned_again_by_one_replica_and_fails_when_it_stalls_again(
    settings, redis_clean, photos
):
    """Two gateway replicas find a job stalled (no worker runs: its PLAN waits in the queue): one sends its PLAN
    again. A file finished since, it is planned again at its next stall; with none, it fails, saying so."""
    jobs, _ = settings
    jobs = jobs.model_copy(update={"stall_timeout_s": 1})
    first, second = Jobs(jobs), Jobs(jobs)
    try:
        job = await first.submit_path(str(photos))
        assert (job["state"], job["replans"]) == ("queued", 0)
        await asyncio.sleep(1.5)
        seen = await asyncio.to_thread(second.store.get, job["id"])  # read before the first replica acts
        job = await first.get(job["id"])
        assert (job["state"], job["replans"]) == ("queued", 1) and job["replanned_at"]
        job = await asyncio.to_thread(second._fail_if_stalled, seen)
        assert (job["state"], job["replans"]) == ("queued", 1)
        assert queued_tasks(redis_clean) == [PLAN, PLAN]  # submitted, then planned again once
        await asyncio.to_thread(first.store.record, job["id"], [("a.jpg", "indexed", None)])  # a file finished
        await asyncio.sleep(1.5)
        job = await second.get(job["id"])
        assert (job["state"], job["replans"]) == ("queued", 2)
        await asyncio.sleep(1.5)
        job = await second.get(job["id"])
        assert (
            job["state"] == "failed" and job["error"] == "stalled: no file finished for 1 s since it was planned again"
        ), job
    finally:
        first.store.close()
        second.store.close()
