"""Gateway replicas: two `dogsearch serve gateway` processes on one data folder and one broker take turns through
Redis as one gateway's requests do. The same photo posted to both at once is stored once (one 201, one 409 where the
fields differ), and of two jobs over the same photos posted to both at once one is accepted (one 202, one 409).
Both were accepted by both before (each process's own lock, and the jobs' check-then-store, per process). A gateway
and a worker close their connections to that Redis (the locks', the rate limit's) at their shutdown."""
from __future__ import annotations

import asyncio
import json
import os
import sys

import celery.contrib.testing.tasks  # noqa: F401  (the ping task start_worker expects)
import httpx
import pytest
from celery.contrib.testing.worker import start_worker

from dogsearch.services.gateway.app import create_app
from dogsearch.services.worker import worker_celery
from tests.fakes import serving
from tests.jobs.helpers import wait_until
from tests.jobs.servers import REDIS_URL, SlowModel, redis_db
from tests.processes import Process, free_port, http_ready


@pytest.fixture
def model() -> SlowModel:
    return SlowModel(delay_s=0.3)  # an add embeds for a while: two adds of one photo are under way at once


@pytest.fixture
def replicas(tmp_path, backends, redis_clean, photos):
    """Two gateways in Celery mode on the same photos and Redis db (no worker: jobs stay queued)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | {
        "DOGSEARCH_BROKER_URL": REDIS_URL, "DOGSEARCH_JOBS_ALLOWED_ROOTS": json.dumps([str(photos.parent)]),
        "DOGSEARCH_JOBS_DATA_DIR": str(tmp_path / "jobs")}
    started = []
    try:
        for n in range(2):
            port = free_port()
            cmd = [sys.executable, "-m", "dogsearch.cli", "serve", "gateway", "--host", "127.0.0.1", "--port",
                   str(port), "--data-dir", str(tmp_path / "photos"), "--embedder-url", backends.embedder.url,
                   "--search-url", backends.search.url]
            url = f"http://127.0.0.1:{port}"
            started.append(Process(f"gateway{n}", cmd, env, tmp_path / f"gateway{n}.log", http_ready(url),
                                   url=url).start())
        for gateway in started:
            gateway.wait_ready(60)
        yield started
    finally:
        for gateway in started:
            gateway.stop()


async def test_the_same_photo_posted_to_two_replicas_at_once_is_stored_once(replicas, photos):
    async with httpx.AsyncClient(timeout=60) as client:
        for path in sorted(photos.rglob("*.jpg"))[:4]:
            data = path.read_bytes()
            answers = await asyncio.gather(*(
                client.post(f"{gateway.url}/v1/dogs", files={"image": (path.name, data)}, data={"name": name})
                for gateway, name in zip(replicas, ("Rex", "Max"), strict=True)))
            assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
            created, refused = sorted(answers, key=lambda r: r.status_code)
            assert refused.json()["code"] == "photo_stored_already", refused.text
            assert refused.json()["dog_id"] == created.json()["id"]
            for gateway in replicas:  # the name of the 201 is the one kept
                stored = (await client.get(f"{gateway.url}/v1/dogs/{created.json()['id']}")).json()
                assert stored["payload"]["name"] == created.json()["payload"]["name"], stored


async def test_overlapping_jobs_posted_to_two_replicas_at_once_one_is_accepted(replicas, photos):
    async with httpx.AsyncClient(timeout=60) as client:
        for folder in sorted(p for p in photos.iterdir() if p.is_dir()):
            answers = await asyncio.gather(*(client.post(f"{gateway.url}/v1/jobs/index", json={"path": str(folder)})
                                             for gateway in replicas))
            assert sorted(r.status_code for r in answers) == [202, 409], (folder.name, [r.text for r in answers])
            accepted, refused = sorted(answers, key=lambda r: r.status_code)
            assert refused.json()["code"] == "folder_being_indexed", refused.text
            assert refused.json()["job_id"] == accepted.json()["id"]
        jobs = (await client.get(f"{replicas[0].url}/v1/jobs")).json()["items"]
    assert len(jobs) == len([p for p in photos.iterdir() if p.is_dir()]), jobs


def connections(*names: str) -> set[str]:
    """The ids of the connections to the tests' Redis db that clients of these names keep open (SharedLocks',
    RedisRateLimit's CLIENT SETNAME). By id: clients an earlier test of the run left to the garbage collector may
    still be open."""
    client = redis_db()
    try:
        db = str(client.connection_pool.connection_kwargs["db"])
        return {c["id"] for c in client.client_list() if c["name"] in names and c["db"] == db}
    finally:
        client.close()


async def test_a_gateway_and_a_worker_close_their_connections_to_redis_at_their_shutdown(settings, photos):
    jobs, gateway = settings
    folder = sorted(p for p in photos.iterdir() if p.is_dir())[0]
    before = connections("dogsearch-locks", "dogsearch-ratelimit")
    app = create_app(gateway.model_copy(update={"rate_limit_per_minute": 600}), jobs_settings=jobs)
    async with serving(app) as client:
        added = await client.post("/v1/dogs", files={"image": ("d.jpg", next(folder.glob("*.jpg")).read_bytes())})
        assert added.status_code == 201, added.text  # under the photo's and the dog's locks, rate-limited
        job = await client.post("/v1/jobs/index", json={"path": str(folder)})  # under the jobs' lock
        assert job.status_code == 202, job.text
        locks, limits = connections("dogsearch-locks") - before, connections("dogsearch-ratelimit") - before
        assert len(locks) >= 2 and len(limits) >= 1
    assert not connections("dogsearch-locks", "dogsearch-ratelimit") & (locks | limits)

    before = connections("dogsearch-locks")
    app = worker_celery(jobs, gateway)
    with start_worker(app, pool="threads", concurrency=1, perform_ping_check=False, shutdown_timeout=20) as worker:
        store = app.dogsearch_store
        done = await wait_until(lambda: store.get(job.json()["id"])["state"] == "done", 30,
                                lambda: f"the job is {store.get(job.json()['id'])}")
        locks = connections("dogsearch-locks") - before
        assert done and len(locks) >= 1  # the locks of its batches
        await asyncio.to_thread(worker.stop)  # a warm shutdown, as at a SIGTERM (the harness's own is a cold one)
        assert not connections("dogsearch-locks") & locks
