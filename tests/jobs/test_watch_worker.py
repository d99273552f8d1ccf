"""Checking new dogs against the watches on Celery workers (a broker set): a worker killed in the middle of a check,
after it recorded the match and before it acknowledged the task, neither loses nor repeats the notification: the
check runs again on another worker and the webhook gets exactly one delivery. A bulk job's batches, stored by a
worker, are checked too. A watched dog deleted in the gateway while a check waits for a worker ends its watch there
too. A check given up is kept with why, and `dogsearch check` shows it. A worker closes its checks' connections to
the search service at its shutdown."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import celery.contrib.testing.tasks  # noqa: F401  (the ping task start_worker expects)
import pytest
from celery.contrib.testing.worker import start_worker as in_process_worker

from dogsearch import cli
from dogsearch.jobs.settings import JobsSettings
from dogsearch.models.calibration import FILE_NAME
from dogsearch.services.gateway.app import create_app
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.worker import worker_celery
from dogsearch.watches.store import WatchStore
from tests.fakes import serving
from tests.gateway.helpers import DARK_RED, RED, add
from tests.gateway.test_samedog import CALIBRATION
from tests.images import solid
from tests.jobs.helpers import wait_until
from tests.jobs.servers import REDIS_URL, redis_db, worker_environment
from tests.watches.receiver import Receiver, signed


def watch_settings(tmp_path, backends, broker_url: str,
                   visibility_timeout_s: int) -> tuple[JobsSettings, GatewaySettings]:
    """(jobs, gateway) settings of a gateway and its workers that check new dogs against the watches (the test
    model calibrated, webhooks to loopback allowed and sent at once)."""
    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(CALIBRATION.to_json()))
    jobs = JobsSettings(broker_url=broker_url, data_dir=tmp_path / "jobs", batch_size=8,
                        visibility_timeout_s=visibility_timeout_s, allowed_roots=[tmp_path / "in"])
    gateway = GatewaySettings(data_dir=tmp_path / "photos", embedder_url=backends.embedder.url,
                              search_url=backends.search.url, calibration_dir=models, webhook_allow_private=True,
                              webhook_poll_s=0.1, webhook_backoff_s=0.1)
    return jobs, gateway


@pytest.fixture
def settings(tmp_path, backends, redis_clean):
    return watch_settings(tmp_path, backends, REDIS_URL, visibility_timeout_s=3)


@pytest.fixture
def worker_env(settings):
    return worker_environment(*settings, DOGSEARCH_GATEWAY_CALIBRATION_DIR=str(settings[1].calibration_dir))


def start_worker(env, log, *module: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", *module, "--concurrency", "1", "--loglevel", "INFO"]
    with open(log, "ab") as out:  # the logs go to stdout, Celery's own to stderr
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


async def test_a_worker_killed_mid_check_neither_loses_nor_repeats_the_notification(settings, worker_env, tmp_path):
    jobs, gateway = settings
    app = create_app(gateway, jobs_settings=jobs)
    queue = redis_db()
    log_first, log_second = tmp_path / "first.log", tmp_path / "second.log"
    with Receiver() as receiver:
        async with serving(app) as gw:
            lost = (await add(gw, solid(RED), status="lost")).json()["id"]
            watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
            # Two checks wait in the queue (one per stored dog); the second records the match, then its worker
            # dies before acknowledging it.
            first = start_worker(worker_env, log_first, "tests.watches.dying_worker")
            second = None
            try:
                await wait_until(lambda: first.poll() is not None, 60,
                             lambda: "the first worker did not die mid-check: " + log_first.read_text()[-3000:])
                assert first.returncode == 70, log_first.read_text()[-3000:]
                await receiver.wait_for(1)
                second = start_worker(worker_env, log_second, "dogsearch.cli", "worker")
                # The killed check comes back after the visibility timeout and runs to the end on the second.
                await wait_until(lambda: "dogsearch.watches.check" in log_second.read_text()
                             and "succeeded" in log_second.read_text(), 60,
                             lambda: "the killed check did not run again: " + log_second.read_text()[-3000:])
                await wait_until(lambda: not queue.hlen("unacked") and not queue.llen("celery"), 30,
                             lambda: "tasks left in the queue")
                await asyncio.sleep(0.5)  # time for a second delivery, were there one
                assert len(receiver.received) == 1, receiver.received
                # A bulk job on the workers: the batch that stores a look-alike enqueues its check.
                folder = tmp_path / "in" / "found"
                folder.mkdir(parents=True)
                (folder / "again.jpg").write_bytes(solid(DARK_RED, size=(66, 48)))
                (folder / "other.jpg").write_bytes(solid((20, 40, 220)))
                r = await gw.post("/v1/jobs/index", json={"path": str(folder), "payload": {"status": "found"}})
                assert r.status_code == 202, r.text
                await receiver.wait_for(2, timeout=60)
            finally:
                for proc in (first, second):
                    if proc is not None:
                        stop(proc)
            inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    queue.close()
    assert len(receiver.received) == 2, receiver.received
    for headers, body in receiver.received:
        assert headers["x-dogsearch-signature"] == signed(watch["secret"], body)
    first, by_job = (json.loads(body)["dog"]["id"] for _, body in receiver.received)
    assert first == found and by_job != found
    assert [m["dog"]["id"] for m in inbox] == [by_job, found]  # newest first
    assert all(m["delivery"]["state"] == "delivered" and m["delivery"]["attempts"] == 1 for m in inbox)


def checks_succeeded(log) -> int:
    return sum("dogsearch.watches.check" in line and "succeeded" in line for line in log.read_text().splitlines())


async def test_a_dog_deleted_while_a_check_waits_for_a_worker_ends_its_watch_there(settings, worker_env, tmp_path):
    """The gateway deletes the lost dog while the check of a found dog like it waits in the queue; the worker,
    another process on the same watch store, then records nothing for the ended watch, whose webhook is told only
    that it ended. A watch of the same photos made without the dog is told of the match: the check ran."""
    jobs, gateway = settings
    app = create_app(gateway, jobs_settings=jobs)
    queue = redis_db()
    log = tmp_path / "worker.log"
    with Receiver() as receiver:
        async with serving(app) as gw:
            lost = (await add(gw, solid(RED), status="lost")).json()["id"]
            of_dog = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            of_photo = (await gw.post("/v1/watches", files=[("image", ("a.jpg", solid(RED)))],
                                      data={"webhook_url": receiver.url})).json()
            found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
            assert queue.llen("celery") == 2  # the two dogs' checks: no worker yet
            assert (await gw.delete(f"/v1/dogs/{lost}")).status_code == 204
            worker = start_worker(worker_env, log, "dogsearch.cli", "worker")
            try:
                await wait_until(lambda: checks_succeeded(log) == 2, 60,
                                 lambda: "the checks did not run: " + log.read_text()[-3000:])
                await receiver.wait_for(2)
                await asyncio.sleep(0.5)  # time for another delivery, were there one
            finally:
                stop(worker)
            ended = (await gw.get(f"/v1/watches/{of_dog['id']}")).json()
            inbox = (await gw.get(f"/v1/watches/{of_dog['id']}/matches")).json()["items"]
    queue.close()
    assert ended["ended_at"] is not None and inbox == []
    sent = sorted((h["x-dogsearch-delivery"], json.loads(body)["event"]) for h, body in receiver.received)
    assert sent == sorted([(f"{of_photo['id']}:{found}", "watch.match"), (f"{of_dog['id']}:{lost}", "watch.ended")])


async def test_a_check_that_kills_every_worker_is_given_up_not_run_forever(settings, worker_env, tmp_path, capsys):
    jobs, gateway = settings
    app = create_app(gateway, jobs_settings=jobs)
    queue = redis_db()
    env = {**worker_env, "DOGSEARCH_JOBS_MAX_DELIVERIES": "1"}
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    async with serving(app) as gw:
        lost = (await add(gw, solid(RED), status="lost")).json()["id"]
        r = await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
    # Two checks wait in the queue (one per stored dog); each worker dies on the first it runs.
    workers = []
    try:
        for log in logs[:2]:
            workers.append(start_worker(env, log, "tests.watches.poison_check_worker"))
            await wait_until(lambda: workers[-1].poll() is not None, 60,
                         lambda log=log: "the worker did not die on its check: " + log.read_text()[-3000:])
            assert workers[-1].returncode == 71, log.read_text()[-3000:]
        # Both came back after the visibility timeout, their second delivery: past MAX_DELIVERIES=1, given up.
        workers.append(start_worker(env, logs[2], "tests.watches.poison_check_worker"))
        store = WatchStore(gateway.watches_file)
        await wait_until(lambda: len(store.given_up_checks()) == 2, 60,
                     lambda: "the checks were not given up: " + logs[2].read_text()[-3000:])
        await wait_until(lambda: not queue.hlen("unacked") and not queue.llen("celery"), 30, lambda: "tasks left")
        assert workers[-1].poll() is None  # it gave them up instead of running them: alive
        assert "stopped its worker 1 times: given up" in logs[2].read_text()
    finally:
        for proc in workers:
            stop(proc)
    queue.close()
    given_up = store.given_up_checks()
    assert sorted(e for c in given_up for e in c["entries"]) == sorted([lost, found])
    assert all(c["deliveries"] == 2 and c["reason"] == "it stopped its worker 1 times" for c in given_up)
    # `dogsearch check` beside the deployment shows them, with when and why, and does not say all is well
    status = await asyncio.to_thread(cli.main, ["check", "--search-url", gateway.search_url, "--photos",
                                                str(gateway.data_dir), "--data-dir", str(tmp_path / "cli")])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1 and "2 given-up watch checks" in lines[0]
    assert sorted(lines[1:]) == sorted(f"watch check {c['key']} of 1 new dogs, given up {c['gave_up_at']}: it "
                                       "stopped its worker 1 times" for c in given_up)


def failed_for_no_store(log) -> set[str]:
    """The dogs whose check failed for want of a watch store (each named in the line saying so)."""
    return {line.rsplit("its dogs: ", 1)[1].split('"')[0] for line in log.read_text().splitlines()
            if "found no watch store for" in line}


async def test_a_worker_on_another_data_folder_refuses_the_checks_loudly_and_makes_no_store(settings, worker_env,
                                                                                          tmp_path):
    """A worker given another data folder than the gateway's (so another watches path: a remote worker) looks for
    the store where its settings say, finds none, and says so at its start; each check is refused (a Celery retry,
    logged with the path and the setting), sent again, and past its retry window fails: never counted as done, and
    the worker makes no store of its own (it would find no watch there and drop the alert without a word)."""
    jobs, gateway = settings
    app = create_app(gateway, jobs_settings=jobs)
    queue = redis_db()
    log = tmp_path / "elsewhere.log"
    elsewhere = tmp_path / "elsewhere" / "photos"
    env = {**worker_env, "DOGSEARCH_GATEWAY_DATA_DIR": str(elsewhere), "DOGSEARCH_JOBS_CHECK_RETRY_WINDOW_S": "3"}
    with Receiver() as receiver:
        async with serving(app) as gw:
            lost = (await add(gw, solid(RED), status="lost")).json()["id"]
            watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
            worker = start_worker(env, log, "dogsearch.cli", "worker")
            try:
                # (a check held past the tests' 3 s visibility timeout may be handed out, and fail, twice)
                await wait_until(lambda: failed_for_no_store(log) == {lost, found}, 60,
                                 lambda: "the checks did not fail: " + log.read_text()[-3000:])
                await wait_until(lambda: not queue.hlen("unacked") and not queue.llen("celery"), 30,
                                 lambda: "tasks left in the queue")
                await asyncio.sleep(0.5)  # time for a delivery, were there one
            finally:
                stop(worker)
            inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    queue.close()
    text = log.read_text()
    path = elsewhere.parent / "watches" / "watches.sqlite3"
    assert f"this worker refuses checks of new dogs against the watches while no watch store at {path}" in text
    assert text.count(f"cannot run on this worker: no watch store at {path}") >= 2
    assert "set DOGSEARCH_GATEWAY_WATCHES_PATH" in text and "retry: Retry in" in text
    assert "it fails, and their alerts are not sent" in text and "raised unexpected: StoreMissing" in text
    assert checks_succeeded(log) == 0
    assert not path.parent.exists()
    assert inbox == [] and receiver.received == []


async def test_a_check_that_finds_no_store_yet_waits_for_the_gateway_to_make_it(settings, worker_env, tmp_path):
    """Compose may start a worker before the gateway, which makes the store at its start: checks waiting then (left
    in Redis by an earlier gateway: its store's folder moved away here) are refused and sent again, the worker
    making no store meanwhile, and run once the store is there; the gateway sends the alert."""
    jobs, gateway = settings
    queue = redis_db()
    log = tmp_path / "worker.log"
    folder = gateway.watches_file.parent
    with Receiver() as receiver:
        async with serving(create_app(gateway, jobs_settings=jobs)) as gw:
            lost = (await add(gw, solid(RED), status="lost")).json()["id"]
            watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
        assert queue.llen("celery") == 2  # the two dogs' checks: no worker yet
        folder.rename(tmp_path / "away")
        worker = start_worker(worker_env, log, "dogsearch.cli", "worker")
        try:
            await wait_until(lambda: log.read_text().count("retry: Retry in") >= 4, 60,
                             lambda: "the checks were not refused: " + log.read_text()[-3000:])
            assert not folder.exists() and checks_succeeded(log) == 0
            (tmp_path / "away").rename(folder)  # the gateway made it
            await wait_until(lambda: checks_succeeded(log) == 2, 60,
                             lambda: "the checks did not run: " + log.read_text()[-3000:])
        finally:
            stop(worker)
        async with serving(create_app(gateway, jobs_settings=jobs)) as gw:
            [(_, body)] = await receiver.wait_for(1)
            inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    queue.close()
    assert f"refuses checks of new dogs against the watches while no watch store at {gateway.watches_file}" in \
        log.read_text()
    assert json.loads(body)["dog"]["id"] == found and [m["dog"]["id"] for m in inbox] == [found]
    assert "raised unexpected" not in log.read_text()


def held_to(port: int) -> set[int]:
    """The local ports of this host's TCP connections to `port` that a process still holds open (a socket its
    process let go has no inode)."""
    held = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, inode = (line.split()[i] for i in (1, 2, 9))
        if int(remote.rsplit(":", 1)[1], 16) == port and inode != "0":
            held.add(int(local.rsplit(":", 1)[1], 16))
    return held


async def test_a_worker_closes_its_checks_connections_to_the_search_service_at_its_shutdown(settings):
    jobs, gateway = settings
    queue = redis_db()
    async with serving(create_app(gateway, jobs_settings=jobs)) as gw:
        lost = (await add(gw, solid(RED), status="lost")).json()["id"]
        assert (await gw.post("/v1/watches", json={"dog_id": lost})).status_code == 201
        await add(gw, solid(DARK_RED), status="found")
    assert queue.llen("celery") == 2  # the two dogs' checks, which look their vectors up in the search service
    port = int(gateway.search_url.rsplit(":", 1)[1])
    before = held_to(port)
    app = worker_celery(jobs, gateway)
    with in_process_worker(app, pool="threads", concurrency=1, perform_ping_check=False,
                           shutdown_timeout=20) as worker:
        await wait_until(lambda: not queue.hlen("unacked") and not queue.llen("celery"), 30, lambda: "checks left")
        opened = held_to(port) - before
        assert opened  # the checks' client keeps its connection for the next check
        await asyncio.to_thread(worker.stop)  # a warm shutdown, as at a SIGTERM (the harness's own is a cold one)
        assert not held_to(port) & opened
    queue.close()
