"""`dogsearch worker` as its own process, killed with SIGKILL in the middle of a job: its unacknowledged batch
goes to the restarted worker, and every distinct photo ends up stored exactly once, counted once. A batch that
kills its worker every time runs a bounded number of times, then fails."""
from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time

import pytest

from dogsearch.jobs.store import RedisJobStore
from tests.jobs.helpers import all_dogs, job_photo_totals, wait_job
from tests.jobs.poison_worker import POISON
from tests.jobs.servers import REDIS_URL, SlowModel, WorkerProcess, worker_environment


@pytest.fixture
def model() -> SlowModel:
    return SlowModel(delay_s=0.4)  # about 0.4 s a batch of 8: time to kill the worker mid-job


@pytest.fixture
def worker_env(settings):
    return worker_environment(*settings)


@pytest.mark.parametrize("labels", ["folders", "dogs"])
async def test_a_worker_killed_mid_job_loses_and_doubles_nothing(celery_gateway, worker_env, photos, model, tmp_path,
                                                                labels):
    """labels "dogs": each folder's photos are one dog, its batch killed half done as well."""
    originals = sorted(photos.rglob("*.jpg"))
    # Two more names for bytes already in the folder: 40 distinct photos among 42 files.
    (photos / "copy-a.jpg").write_bytes(originals[5].read_bytes())
    (photos / "copy-b.jpg").write_bytes(originals[30].read_bytes())
    log = tmp_path / "worker.log"
    first = WorkerProcess(worker_env, log).start()
    second = None
    try:
        r = await celery_gateway.post("/v1/jobs/index", json={"path": str(photos), "labels": labels})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        started = await wait_job(celery_gateway, job_id, timeout=40, until=lambda j: j["indexed"] >= 8)
        assert started["state"] == "running", started
        first.kill()  # SIGKILL: its batch in flight is neither acknowledged nor finished
        killed_at = (await celery_gateway.get(f"/v1/jobs/{job_id}")).json()
        assert killed_at["indexed"] + killed_at["duplicates"] < 42, "the job ended before the worker was killed"

        second = WorkerProcess(worker_env, log).start()
        job = await wait_job(celery_gateway, job_id, timeout=60)
    finally:
        for worker in (first, second):
            if worker:
                worker.stop()
    assert job["state"] == "done", (job, log.read_text()[-3000:])
    assert (job["total"], job["indexed"], job["duplicates"], job["failed"]) == (42, 40, 2, 0), job
    # what the gateway's /metrics says the workers did: each file once, the killed batch's too
    totals = await job_photo_totals(celery_gateway)
    assert (totals["indexed"] + totals["near_duplicate"], totals["duplicate"], totals["failed"]) == (40, 2, 0), totals
    dogs = await all_dogs(celery_gateway)
    shas = {hashlib.sha256(p.read_bytes()).hexdigest(): p.parent.name for p in originals}
    if labels == "folders":
        assert len(dogs) == 40 == len({d["id"] for d in dogs})
        assert {d["payload"]["sha256"] for d in dogs} == set(shas)
    else:  # 10 dogs of 4 photos, or a copy (its own dog) took its bytes first: every photo once, each dog one folder's
        photos_of = {d["id"]: (await celery_gateway.get(f"/v1/dogs/{d['id']}")).json()["photos"] for d in dogs}
        ids = [p["id"] for listed in photos_of.values() for p in listed]
        assert len(ids) == 40 == len(set(ids)) and 10 <= len(dogs) <= 12
        for dog, listed in photos_of.items():
            served = [(await celery_gateway.get(p["image_url"])).content for p in listed]
            assert len({shas[hashlib.sha256(data).hexdigest()] for data in served}) == 1, dog
        assert {hashlib.sha256((await celery_gateway.get(p["image_url"])).content).hexdigest()
                for listed in photos_of.values() for p in listed} == set(shas)
    # At least the killed batch was embedded twice: that is the price of at-least-once delivery, not a duplicate.
    assert sum(model.batch_sizes) >= 40


async def test_a_batch_that_keeps_killing_its_worker_fails_after_max_deliveries(celery_gateway, worker_env, photos,
                                                                                tmp_path):
    """The poison batch comes back after each death (acks_late); its fourth delivery fails its files instead of
    killing a fourth worker, and the job finishes."""
    (photos / "poison.jpg").write_bytes(b"\xff\xd8\xff" + POISON)
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    at = files.index("poison.jpg") // 8 * 8
    poison_batch = files[at:at + 8]
    env = worker_env | {"DOGSEARCH_JOBS_MAX_DELIVERIES": "3"}
    log = tmp_path / "worker.log"
    workers: list[WorkerProcess] = []
    r = await celery_gateway.post("/v1/jobs/index", json={"path": str(photos)})
    job_id = r.json()["id"]
    try:
        deadline = time.monotonic() + 150
        while True:
            job = (await celery_gateway.get(f"/v1/jobs/{job_id}")).json()
            if job["state"] not in ("queued", "running"):
                break
            assert time.monotonic() < deadline, (job, len(workers), log.read_text()[-3000:])
            if not workers or workers[-1].proc.poll() is not None:
                workers.append(WorkerProcess(env, log, ("tests.jobs.poison_worker",)).start())
            await asyncio.sleep(0.2)
    finally:
        for worker in workers:
            worker.stop()
    deaths = [w.proc.returncode for w in workers if w.proc.returncode == 70]
    assert deaths == [70, 70, 70], ([w.proc.returncode for w in workers], log.read_text()[-3000:])
    assert job["state"] == "done", job
    assert (job["total"], job["indexed"], job["failed"]) == (41, 41 - len(poison_batch), len(poison_batch)), job
    assert {e["file"]: e["reason"] for e in job["errors"]} == {
        f: "this batch stopped the worker 3 times" for f in poison_batch}
    assert len(await all_dogs(celery_gateway)) == 41 - len(poison_batch)


def test_cli_index_queues_a_job_for_the_workers(settings, worker_env, photos, tmp_path):
    """`dogsearch index DIR` with DOGSEARCH_BROKER_URL set: the job goes to the workers; the CLI follows it."""
    worker = WorkerProcess(worker_env, tmp_path / "worker.log").start()
    try:
        out = subprocess.run([sys.executable, "-m", "dogsearch.cli", "index", str(photos)], env=worker_env,
                             capture_output=True, text=True, timeout=120)
    finally:
        worker.stop()
    assert out.returncode == 0, out.stderr[-3000:]
    assert "indexed 40, duplicates 0 (already stored 0), near duplicates 0, failed 0" in out.stdout
    store = RedisJobStore(REDIS_URL)
    jobs = store.list(10)
    store.close()
    # no key: an operator's job, as one run in-process
    assert [(job["owner"], job["admin"]) for job in jobs] == [(None, True)]


def test_a_worker_whose_key_the_services_refuse_does_not_start(tmp_path):
    # It started, looked healthy, and failed every photo of every job after its retries ("search unavailable: this
    # service needs the internal key"). A service that does not answer yet is not a refusal: it starts anyway.
    from dogsearch.services.search.app import create_app as create_search
    from dogsearch.services.search.settings import SearchSettings
    from tests.jobs.servers import Served

    right = "right-" + "k" * 24
    search = Served(create_search(SearchSettings(data_dir=tmp_path / "vectors", DOGSEARCH_INTERNAL_KEY=right)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | {
        "DOGSEARCH_BROKER_URL": REDIS_URL, "DOGSEARCH_GATEWAY_DATA_DIR": str(tmp_path / "photos"),
        "DOGSEARCH_GATEWAY_EMBEDDER_URL": "http://127.0.0.1:1"}  # nothing there yet
    with search:
        for key in ("wrong-" + "k" * 24, None):
            given = env | {"DOGSEARCH_GATEWAY_SEARCH_URL": search.url}
            if key:
                given["DOGSEARCH_INTERNAL_KEY"] = key
            done = subprocess.run([sys.executable, "-m", "dogsearch.cli", "worker"], env=given, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode != 0, done.stderr[-2000:]
            assert f"the search service at {search.url} refuses this worker" in done.stderr
            assert "DOGSEARCH_INTERNAL_KEY" in done.stderr and "does not answer yet" in done.stderr
