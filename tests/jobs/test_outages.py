"""Outages in the middle of a job, against real processes: a redis-server of the test's own (the broker and the job
state) killed and started again, and the embedder gone for longer than a batch used to retry. No batch is lost,
none fails for it, and every photo is counted once."""
from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.exceptions import Reject

from dogsearch.jobs.celery_app import INDEX_BATCH, create_celery
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.settings import GatewaySettings
from tests.jobs.helpers import all_dogs
from tests.jobs.servers import SlowModel, WorkerProcess, worker_environment


@pytest.fixture
def model() -> SlowModel:
    return SlowModel(delay_s=0.5)  # batches of 4 on one model: a job of 10 batches takes a few seconds


@pytest.fixture
def settings(tmp_path, backends, broker):
    """As conftest's, on this test's own Redis; a visibility timeout no wait here reaches (as an operator's), and a
    stall timeout beyond every outage here (the embedder's 35 s), after which the gateway plans a job again whose
    batch Redis lost as it died."""
    jobs = JobsSettings(broker_url=broker.url, data_dir=tmp_path / "jobs", allowed_roots=[tmp_path / "in"],
                        batch_size=4, visibility_timeout_s=60, stall_timeout_s=45)
    gateway = GatewaySettings(data_dir=tmp_path / "photos", embedder_url=backends.embedder.url,
                              search_url=backends.search.url)
    return jobs, gateway


async def job_of(client: httpx.AsyncClient, job_id: str, timeout: float, until) -> dict:
    """Polls the job until `until(job)`; the gateway answers 503 while Redis is down."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while True:
        r = await client.get(f"/v1/jobs/{job_id}")
        if r.status_code == 200:
            job = r.json()
            if until(job):
                return job
        else:
            assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, f"not there after {timeout} s: {job}"
        await asyncio.sleep(0.1)


def over(job: dict) -> bool:
    return job["state"] not in ("queued", "running")


async def run_through(celery_gateway, settings, photos, tmp_path, outage, **env: str) -> tuple[dict, str]:
    """A job over `photos` with two workers of two threads, and `outage()` once 8 photos are in: the job when it
    is over, and the workers' whole log (a reconnect's traceback may fill any tail of it)."""
    log = tmp_path / "worker.log"
    workers = [WorkerProcess(worker_environment(*settings, **env), log, concurrency=2).start() for _ in range(2)]
    try:
        r = await celery_gateway.post("/v1/jobs/index", json={"path": str(photos)})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        started = await job_of(celery_gateway, job_id, 40, lambda j: j["indexed"] >= 8 or over(j))
        assert started["state"] == "running", started
        await outage()
        job = await job_of(celery_gateway, job_id, 150, over)
    finally:
        for worker in workers:
            worker.stop()
    return job, log.read_text(errors="replace")


async def test_a_redis_restart_mid_job_loses_no_batch(celery_gateway, settings, broker, photos, tmp_path):
    """The batches in flight meet Redis down (taking their photos' locks, storing their dogs' hashes, counting their
    files, announcing their dogs): each waits for it and goes on, none is dropped, and the job finishes with exact
    counts: at once, or, when Redis died with a batch taken off the queue and not yet recorded unacknowledged (kombu's
    two steps), once the gateway has planned the stalled job again."""
    job, log = await run_through(celery_gateway, settings, photos, tmp_path, restart(broker))
    assert job["state"] == "done", (job, log[-4000:])
    assert (job["total"], job["indexed"], job["duplicates"], job["failed"]) == (40, 40, 0, 0), (job, log[-4000:])
    assert "waiting for it" in log  # they met it down
    assert "In Celery 5.1 we introduced" not in log  # no warning that they would be cancelled
    dogs = await all_dogs(celery_gateway)
    assert len(dogs) == 40 == len({d["payload"]["sha256"] for d in dogs})
    # Their acknowledgements reached Redis, those sent as it died too: none of them comes back later. Queued, the
    # checks of their dogs against the watches that the batches sent while their workers' consumers were still
    # reconnecting may wait for the next worker; no batch may.
    unacked, queued = left_in(broker)
    assert unacked == [] and INDEX_BATCH not in queued, (unacked, queued)


async def test_redis_down_at_a_batch_s_locks_is_waited_for_not_taken_for_a_service_outage(celery_gateway, settings,
                                                                                          broker, photos, tmp_path):
    """A batch that meets Redis down when it takes its photos' locks waits for it, as for its job store: with a
    retry window for the embedder and the search service far shorter than Redis's outage (an outage of theirs that
    long fails a batch), no photo fails. (Not 0: a call to the embedder that meets its kept-alive connection closed
    by the server as it is sent fails once, under load, and a batch with no window failed for it.)"""
    job, log = await run_through(celery_gateway, settings, photos, tmp_path, restart(broker),
                                 DOGSEARCH_JOBS_RETRY_WINDOW_S="2")
    assert (job["state"], job["total"], job["indexed"], job["failed"]) == ("done", 40, 40, 0), (job, log[-4000:])


def test_an_acknowledgement_dropped_as_redis_dies_is_sent_again_once_it_answers(broker, tmp_path):
    """A task done as Redis dies: its worker's consumer, watching no connection to Redis (its one slot busy, no
    remote control), sends the acknowledgement before it sees Redis gone, and Celery drops it ("Couldn't ack"): it
    is sent again once Redis is back, so the task does not run again after the visibility timeout."""
    assert runs_as_redis_dies(broker, tmp_path, lambda: None, 1) == [1]


@pytest.mark.parametrize("requeue", [False, True])
def test_a_rejection_dropped_as_redis_dies_is_sent_again_once_it_answers(broker, tmp_path, requeue):
    """A task that rejects its message as Redis dies (a batch that waited for Redis past its lease does, to be
    handed out again): Celery drops the rejection as it does an acknowledgement ("Couldn't reject"). It is sent
    again once Redis is back: a message rejected for good does not run again, and one to be handed out again runs
    again at once (before, both waited for the visibility timeout, and ran again)."""
    def reject() -> None:
        raise Reject("rejected as Redis dies", requeue=requeue)

    assert runs_as_redis_dies(broker, tmp_path, reject, 2 if requeue else 1) == [1] * (2 if requeue else 1)


def runs_as_redis_dies(broker, tmp_path, first_ends: Callable[[], None], runs: int) -> list[int]:
    """The runs of a task whose first run kills Redis (started again 3 s later), then ends with `first_ends()`, on a
    worker of one thread, once it ran `runs` times and Redis holds none of its messages (within 30 s: half the
    visibility timeout)."""
    app = create_celery(JobsSettings(broker_url=broker.url, data_dir=tmp_path / "jobs", visibility_timeout_s=60))
    app.conf.worker_enable_remote_control = False
    ran = []

    @app.task(name="tests.kill_redis", shared=False, acks_late=True)
    def kill_redis() -> None:
        ran.append(1)
        if len(ran) == 1:  # Redis gone as it ends, back 3 s later
            broker.kill()
            threading.Timer(3, broker.start).start()
            first_ends()

    def settled() -> bool:
        try:
            return len(ran) == runs and not client.hlen("unacked") and not client.llen("celery")
        except redis.ConnectionError:
            return False

    client = redis.Redis.from_url(broker.url)
    try:
        with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=20):
            kill_redis.delay()
            deadline = time.monotonic() + 30
            while not settled():
                assert time.monotonic() < deadline, (ran, left_in(broker))
                time.sleep(0.1)
    finally:
        client.close()
    return ran


def left_in(broker) -> tuple[list[str], list[str]]:
    """The tasks of the messages Redis holds unacknowledged, and of those queued."""
    client = redis.Redis.from_url(broker.url)
    try:
        unacked = [json.loads(raw)[0] for raw in client.hvals("unacked")]
        queued = [json.loads(raw) for raw in client.lrange("celery", 0, -1)]
    finally:
        client.close()
    return [m["headers"]["task"] for m in unacked], [m["headers"]["task"] for m in queued]


def restart(broker):
    async def restart_redis() -> None:
        broker.kill()
        await asyncio.sleep(6)
        broker.start()
    return restart_redis


async def test_an_embedder_redeploy_mid_job_fails_no_photo(celery_gateway, settings, backends, photos, tmp_path):
    """The embedder away for 35 s (batches used to give up after 31 s of retries, the queue failing through them):
    the batches in flight wait, past half the visibility timeout too (handed on as new messages), the others wait
    in the queue, and every photo is indexed once it is back."""
    async def redeploy() -> None:
        backends.stop("embedder")
        await asyncio.sleep(35)
        backends.restart("embedder")

    job, log = await run_through(celery_gateway, settings, photos, tmp_path, redeploy)
    assert job["state"] == "done", (job, log[-4000:])
    assert (job["total"], job["indexed"], job["failed"]) == (40, 40, 0), (job, log[-4000:])
    assert len(await all_dogs(celery_gateway)) == 40
    # the wait is in the workers' log (it said nothing: a job that stood still for up to 10 minutes, unexplained)
    assert "a service does not answer: waiting for it, for up to" in log, log[-4000:]
