"""Gateway replicas: two `dogsearch serve gateway` processes on one data folder and one broker take turns through
Redis as one gateway's requests do. The same photo posted to both at once is stored once (one 201, one 409 where the
fields differ), and of two jobs over the same photos posted to both at once one is accepted (one 202, one 409).
Both were accepted by both before (each process's own lock, and the jobs' check-then-store, per process)."""
from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import pytest

from tests.jobs.servers import REDIS_URL, SlowModel
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
