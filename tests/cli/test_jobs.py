"""A bulk job outlives the command that started it: `dogsearch index --detach`, Ctrl-C while it runs on a gateway
(it goes on) or in this process (it is cancelled), and `dogsearch jobs list | show [--follow] | cancel` to find it
again, on a gateway over HTTP, in a data folder, or in Redis beside the workers."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.cli.index import Cancelled, Plan, in_process
from dogsearch.jobs.store import RedisJobStore, SqliteJobStore, new_job
from tests.fakes import ColorGridModel, fake_all_in_one, fake_image_models
from tests.images import encode
from tests.jobs.servers import REDIS_URL, Served, SlowModel, redis_db


def photo_folder(root: Path, n: int) -> Path:
    folder = root / "photos" / "beagle"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):  # noise: no two look alike (plain colours would all be one another's near-duplicates)
        noise = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        (folder / f"{i}.jpg").write_bytes(encode(noise, "JPEG", quality=95))
    return folder.parent


def dogsearch(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dogsearch.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ) | (env or {}))


@pytest.fixture
def slow_gateway(tmp_path):
    """Every service in one app behind a real loopback port, its fake model 0.2 s a batch of 2: a job of 20 photos
    takes a few seconds."""
    app = fake_all_in_one(tmp_path / "data", SlowModel(0.2), jobs_options={"batch_size": 2, "local_concurrency": 1})
    with Served(app) as served:
        yield served.url


def test_ctrl_c_leaves_a_gateways_job_running_and_jobs_follows_it_to_the_end(tmp_path, slow_gateway):
    folder = photo_folder(tmp_path, 20)
    # Ctrl-C as a terminal sends it: to a command that takes SIGINT (a test run in the background ignores it, and
    # so, from it, would the command)
    started = subprocess.Popen([sys.executable, "-m", "dogsearch.cli", "index", str(folder), "--url", slow_gateway],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        job = running_job(slow_gateway)
        started.send_signal(signal.SIGINT)
        out, err = started.communicate(timeout=30)
    finally:
        started.kill()
    assert started.returncode == 130, err
    assert f"job {job} goes on: `dogsearch jobs show --url {slow_gateway} {job} --follow` follows it" in err

    listed = dogsearch("jobs", "list", "--url", slow_gateway, "--json")
    assert [j["id"] for j in json.loads(listed.stdout)] == [job]
    followed = dogsearch("jobs", "show", "--url", slow_gateway, job, "--follow")
    assert followed.returncode == 0, followed.stderr
    assert "indexed 20, duplicates 0 (already stored 0), near duplicates 0, failed 0" in followed.stdout
    over = dogsearch("jobs", "cancel", "--url", slow_gateway, job)
    assert over.returncode == 1 and "indexed 20" in over.stdout
    assert f"job {job} is already over (done): nothing to cancel" in over.stderr
    over = dogsearch("jobs", "cancel", "--url", slow_gateway, job, "--json")
    assert over.returncode == 1 and json.loads(over.stdout)["state"] == "done"


def test_a_detached_job_is_cancelled_by_its_id_and_what_it_stored_stays(tmp_path, slow_gateway):
    folder = photo_folder(tmp_path, 20)
    detached = dogsearch("index", str(folder), "--url", slow_gateway, "--detach")
    assert detached.returncode == 0, detached.stderr
    job = detached.stdout.strip()  # the id alone on stdout, for a script
    assert f"job {job} queued" in detached.stderr
    assert f"dogsearch jobs cancel --url {slow_gateway} {job}" in detached.stderr
    running_job(slow_gateway, at_least=2)
    cancelled = dogsearch("jobs", "cancel", "--url", slow_gateway, job, "--json")
    assert cancelled.returncode == 0, cancelled.stderr
    stopped = json.loads(cancelled.stdout)
    assert stopped["state"] == "cancelled" and 2 <= stopped["indexed"] < 20
    time.sleep(0.5)  # a batch under way when it was cancelled still finishes
    stored = httpx.get(f"{slow_gateway}/v1/dogs", params={"limit": 1}).json()["total"]
    assert 2 <= stored < 20
    shown = dogsearch("jobs", "show", "--url", slow_gateway, job)
    assert shown.returncode == 1 and f"job {job} cancelled" in shown.stderr
    missing = dogsearch("jobs", "show", "--url", slow_gateway, str(uuid.uuid4()))
    assert missing.returncode == 1 and "no job" in missing.stderr


def running_job(url: str, at_least: int = 1) -> str:
    """The id of the gateway's one job, once it has stored `at_least` photos."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = httpx.get(f"{url}/v1/jobs").json()["items"]
        if jobs and jobs[0]["indexed"] >= at_least:
            assert jobs[0]["state"] == "running", jobs[0]
            return jobs[0]["id"]
        time.sleep(0.05)
    raise AssertionError("no job got under way")


class HeldModel(ColorGridModel):
    """Embeds the first batch; every later one waits for `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.release = threading.Event(), threading.Event()

    def embed(self, batch):
        if self.first.is_set():
            assert self.release.wait(30)
        self.first.set()
        return super().embed(batch)


def test_ctrl_c_cancels_a_job_run_in_this_process_and_the_same_command_goes_on(tmp_path, monkeypatch, capsys):
    """In this process the job stops with the command: Ctrl-C (asyncio.run cancels the command's task) cancels it
    rather than leave it "running" for the next server on the folder to resume beside a new one."""
    monkeypatch.setenv("DOGSEARCH_JOBS_BATCH_SIZE", "2")
    root = photo_folder(tmp_path, 10).resolve()
    plan, data = Plan(root, str(root), None, None, [root]), tmp_path / "data"
    model = HeldModel()

    async def interrupted() -> None:
        task = asyncio.create_task(in_process(plan, data, embedder_options={"detector": "none"},
                                              **fake_image_models(model)))
        await asyncio.to_thread(model.first.wait, 30)
        await asyncio.sleep(0.3)  # the job's first batch stored, the next one held
        task.cancel()
        try:
            with pytest.raises(Cancelled, match="cancelled: what it stored stays"):
                await task
        finally:
            model.release.set()

    asyncio.run(interrupted())
    [job] = SqliteJobStore(data / "jobs" / "jobs.sqlite3").list(5)
    assert job["state"] == "cancelled" and job["indexed"] < 10

    again = asyncio.run(in_process(plan, data, embedder_options={"detector": "none"}, **fake_image_models()))
    assert again["state"] == "done" and again["already_stored"] == job["indexed"]
    assert again["indexed"] + again["already_stored"] == 10

    assert cli.main(["jobs", "list", "--data-dir", str(data)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["ID", "STATE", "CREATED"] and len(table) == 3
    assert [line.split()[:2] for line in table[1:]] == [[again["id"], "done"], [job["id"], "cancelled"]]
    assert cli.main(["jobs", "show", "--data-dir", str(data), job["id"]]) == 1
    assert f"job {job['id']} cancelled" in capsys.readouterr().err


def test_jobs_in_a_data_folder_are_cancelled_there(tmp_path, capsys):
    """Beside a server on the same folder: the job is marked cancelled in its SQLite file, which the server's runner
    reads before each batch. Nothing runs here, and a folder without jobs is not given a job store."""
    data = tmp_path / "data"
    assert cli.main(["jobs", "list", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out.strip() == f"no jobs in {data / 'jobs'}: no job store there" and not data.exists()
    assert cli.main(["jobs", "cancel", "--data-dir", str(data), str(uuid.uuid4())]) == 1
    assert "no jobs in" in capsys.readouterr().err

    store = SqliteJobStore(data / "jobs" / "jobs.sqlite3")
    store.create(new_job(job := str(uuid.uuid4()), source="path", path="/photos", root="/photos", roots=[]))
    assert cli.main(["jobs", "cancel", "--data-dir", str(data), job, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "cancelled" == store.get(job)["state"]


def test_jobs_beside_the_workers_are_read_and_cancelled_in_redis(tmp_path, monkeypatch, capsys):
    redis_db()
    monkeypatch.setenv("DOGSEARCH_BROKER_URL", REDIS_URL)
    store = RedisJobStore(REDIS_URL)
    store.create(new_job(job := str(uuid.uuid4()), source="path", path="/photos", root="/photos", roots=[]))
    assert cli.main(["jobs", "show", job, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "queued"
    assert cli.main(["jobs", "cancel", job]) == 0
    assert store.get(job)["state"] == "cancelled" and f"job {job} cancelled" in capsys.readouterr().err
    assert cli.main(["jobs", "list", "--limit", "1000", "--json"]) == 0
    assert job in {j["id"] for j in json.loads(capsys.readouterr().out)}


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path):
    """`dogsearch jobs list | head -1`: the rest of the table has nowhere to go; no traceback says so."""
    data = tmp_path / "data"
    store = SqliteJobStore(data / "jobs" / "jobs.sqlite3")
    for _ in range(200):
        store.create(new_job(str(uuid.uuid4()), source="path", path="/photos", root="/photos", roots=[]))
    listed = subprocess.run(f"{sys.executable} -m dogsearch.cli jobs list --limit 200 --data-dir {data} | head -1",
                            shell=True, capture_output=True, text=True, timeout=60)
    assert listed.stdout.split()[:2] == ["ID", "STATE"]
    assert "Traceback" not in listed.stderr and "Error" not in listed.stderr, listed.stderr


def test_a_malformed_job_id_is_said_in_words(slow_gateway):
    shown = dogsearch("jobs", "show", "--url", slow_gateway, "nope")
    assert shown.returncode == 1 and "job_id: String should match pattern" in shown.stderr, shown.stderr
    assert "'loc'" not in shown.stderr and "'type'" not in shown.stderr  # not a list of dicts


def test_a_gateway_asking_for_a_key_is_said_so_not_called_unavailable(tmp_path):
    from dogsearch.core.access import ApiKey

    admin = ApiKey.make("admin", "admin", "dgs_" + "a" * 40)
    app = fake_all_in_one(tmp_path / "data", ColorGridModel(), gateway_options={"api_keys": [admin.entry]})
    with Served(app) as served:
        refused = dogsearch("jobs", "list", "--url", served.url, env={"DOGSEARCH_CLIENT_API_KEY": ""})
    assert refused.returncode == 1 and "needs an API key" in refused.stderr, refused.stderr
    assert "unavailable" not in refused.stderr
