"""Checks of new dogs against the watches through outages, against real processes: a `dogsearch worker`, a
redis-server of the test's own (killed and started again), the search service stopped and started. A check waits for
its search service in its worker, then as new messages of its own (no redeliveries: a check may have one delivery
here), and sees it back within seconds; one that meets Redis down as well is not lost; past its retry window it is
given up (logged, kept with its dogs), not acknowledged as if it had run."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from dogsearch.services.gateway.app import create_app
from dogsearch.watches.store import WatchStore
from tests.fakes import serving
from tests.gateway.helpers import DARK_RED, RED, add
from tests.images import solid
from tests.jobs.helpers import wait_until
from tests.jobs.servers import WorkerProcess, worker_environment
from tests.jobs.test_watch_worker import watch_settings

# Half the visibility timeout: how long a check waits in its worker before it sends itself again. Longer than the
# countdown it sends itself with (10 s at most), or Redis would hand out a message its worker still holds.
LEASE_S = 12


@pytest.fixture
def settings(tmp_path, backends, broker):
    return watch_settings(tmp_path, backends, broker.url, visibility_timeout_s=2 * LEASE_S)


@dataclass
class Checks:
    """The checks of a lost dog and of a found one like it, which its watch should match."""

    store: WatchStore
    queue: redis.Redis
    watch_id: str
    lost: str
    found: str
    log: Path
    taken: float  # time.monotonic() when the worker took them

    def matched(self) -> list[str]:
        return [m["dog_id"] for m in self.store.matches(self.watch_id, 10)]

    def since_taken(self, seconds: float) -> float:
        return max(0.0, self.taken + seconds - time.monotonic())

    def logged(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.logged()[-3000:]

    async def all_acknowledged(self) -> None:
        """Nothing left in Redis: no message waiting, none held by a worker."""
        await wait_until(lambda: not self.queue.hlen("unacked") and not self.queue.llen("celery"), 30,
                         lambda: "messages left in Redis: " + self.tail())


@asynccontextmanager
async def checks_with_search_down(settings, backends, broker, tmp_path, **env: str):
    """A watch for a lost dog, and a found dog like it; their checks wait in Redis while the search service stops,
    then a worker takes them, both at once. It allows a check one delivery: the messages a check sends itself are
    new ones, not redeliveries."""
    jobs, gateway = settings
    async with serving(create_app(gateway, jobs_settings=jobs)) as gw:
        lost = (await add(gw, solid(RED), status="lost")).json()["id"]
        r = await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
    backends.stop("search")
    queue = redis.Redis.from_url(broker.url)
    env = worker_environment(*settings, DOGSEARCH_GATEWAY_CALIBRATION_DIR=str(gateway.calibration_dir),
                             DOGSEARCH_JOBS_MAX_DELIVERIES="1", **env)
    worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=2).start()
    store = WatchStore(gateway.watches_file)
    checks = Checks(store, queue, r.json()["id"], lost, found, worker.log, 0.0)
    try:
        await wait_until(lambda: not queue.llen("celery"), 60, lambda: "the worker took no check: " + checks.tail())
        checks.taken = time.monotonic()
        yield checks
    finally:
        worker.stop()
        store.close()
        queue.close()


async def test_a_check_waits_for_its_search_service_and_sees_it_back_within_seconds(settings, backends, broker,
                                                                                     tmp_path):
    """The search service away for 34 s, nearly three leases: the check waits in its worker, then as new messages
    (each, with MAX_DELIVERIES=1, a first delivery), trying again at most 10 s apart: its match is recorded seconds
    after the service is back (Celery retries doubling up to a minute tried again 29 s later; eight of them, four
    minutes, and the check was acknowledged as done)."""
    async with checks_with_search_down(settings, backends, broker, tmp_path) as checks:
        await asyncio.sleep(checks.since_taken(34))
        assert not checks.matched()
        backends.restart("search")
        await wait_until(checks.matched, 15, lambda: "no match 15 s after the search service came: " + checks.tail())
        await checks.all_acknowledged()
        assert checks.matched() == [checks.found]
        assert not checks.store.given_up_checks(), checks.tail()


async def test_a_check_that_meets_redis_down_too_is_not_lost(settings, backends, broker, tmp_path):
    """Redis killed as the check starts waiting for its search service, and down still when its lease ends: the check
    cannot send itself on (a Celery retry was dropped then), so it hands its message back, unacknowledged in Redis
    all along; Redis hands it out again once it is back, and the match is recorded once the search service is."""
    async with checks_with_search_down(settings, backends, broker, tmp_path) as checks:
        broker.kill()
        await asyncio.sleep(checks.since_taken(LEASE_S + 6))
        broker.start()
        backends.restart("search")
        await wait_until(checks.matched, 45, lambda: "the check was lost: " + checks.tail())
        await checks.all_acknowledged()
        assert checks.matched() == [checks.found]
        assert "the broker (Redis) does not answer: waiting for it" in checks.logged()  # it met Redis down
        assert not checks.store.given_up_checks(), checks.tail()


async def test_a_check_whose_search_service_stays_down_is_given_up_and_kept(settings, backends, broker, tmp_path):
    """Past DOGSEARCH_JOBS_CHECK_RETRY_WINDOW_S (15 s here; counted on across the messages it sends itself, past its
    first lease) the check is given up as one that kills its workers is: logged, and kept in the watch store with its
    dogs for an operator; its message acknowledged, and no other sent."""
    window_s = 15
    async with checks_with_search_down(settings, backends, broker, tmp_path,
                                       DOGSEARCH_JOBS_CHECK_RETRY_WINDOW_S=str(window_s)) as checks:
        await wait_until(lambda: len(checks.store.given_up_checks()) == 2, 45,
                         lambda: "the checks were not given up: " + checks.tail())
        assert time.monotonic() - checks.taken >= window_s
        await checks.all_acknowledged()
        given_up = checks.store.given_up_checks()
        assert sorted(e for c in given_up for e in c["entries"]) == sorted([checks.lost, checks.found])
        assert all(c["deliveries"] == 1 for c in given_up), given_up
        assert checks.logged().count(f"found its search service down for {window_s} s: given up") == 2
