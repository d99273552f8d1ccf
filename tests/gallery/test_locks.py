"""The locks shared through Redis (gallery/locks.py, SharedLocks): a holder keeps its locks past the ttl for as long as
it holds them (renewed, by one task a hold), and a process that dies holding one frees it within the ttl. A batch
whose locks another holds in part waits holding only those that sort before it, so two batches never wait on each
other. Each SharedLocks is a client of its own, as each process has (its own tokens)."""
from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from dogsearch.gallery.locks import SharedLocks
from tests.jobs.servers import REDIS_URL, redis_db

NAME = "dogsearch:lock:photo:test"
# A process that takes the lock with a ttl of 1 s, says so, and holds it until it is killed.
HOLDER = """
import asyncio, sys
from dogsearch.gallery.locks import SharedLocks

async def main():
    async with SharedLocks(sys.argv[1], ttl_s=1).hold(sys.argv[2]):
        print("held", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture(autouse=True)
def redis_clean():
    client = redis_db()
    client.flushdb()
    yield
    client.flushdb()
    client.close()


@pytest.mark.parametrize("names", [[NAME], [f"{NAME}:{n}" for n in range(3)]])
async def test_a_lock_held_past_its_ttl_is_renewed_until_its_release(names):
    holder, other = SharedLocks(REDIS_URL, ttl_s=0.6), SharedLocks(REDIS_URL, ttl_s=0.6)
    said: list[str] = []
    held = asyncio.Event()

    async def hold_long() -> None:
        async with holder.hold(*names):
            said.append("held")
            held.set()
            await asyncio.sleep(2.0)  # over three ttls
            said.append("released")

    async def take() -> None:
        await held.wait()
        async with other.hold(names[-1]):
            said.append("taken")

    await asyncio.gather(hold_long(), take())
    assert said == ["held", "released", "taken"]
    await asyncio.gather(holder.aclose(), other.aclose())


async def test_a_batch_s_locks_are_renewed_by_one_task():
    shared = SharedLocks(REDIS_URL)
    before = len(asyncio.all_tasks())
    async with shared.hold(*(f"{NAME}:{n}" for n in range(32))):
        assert len(asyncio.all_tasks()) == before + 1
    await shared.aclose()


async def test_a_batch_waits_for_a_lock_another_holds_holding_only_those_before_it():
    names = [f"{NAME}:{n}" for n in "abcd"]
    batch, other, redis = SharedLocks(REDIS_URL), SharedLocks(REDIS_URL), redis_db()
    entered, leave = asyncio.Event(), asyncio.Event()

    async def take_all() -> None:
        async with batch.hold(*reversed(names)):
            entered.set()
            await leave.wait()

    async with other.hold(names[2]):
        taking = asyncio.create_task(take_all())
        for _ in range(1000):  # a and b taken; d, taken at the first try, let go again
            if redis.exists(*names[:2]) == 2 and not redis.exists(names[3]):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"held: {[n for n in names if redis.exists(n)]}")
        assert not entered.is_set()
        held_by_other = redis.get(names[2])
    await asyncio.wait_for(entered.wait(), 10)
    assert redis.exists(*names) == 4 and redis.get(names[2]) != held_by_other
    leave.set()
    await taking
    assert not redis.exists(*names)
    await asyncio.gather(batch.aclose(), other.aclose())
    redis.close()


async def test_batches_over_the_same_locks_in_any_order_never_wait_on_each_other():
    names = [f"{NAME}:{n}" for n in range(8)]
    clients = [SharedLocks(REDIS_URL) for _ in range(3)]
    done: list[int] = []

    async def batch(n: int, shared: SharedLocks) -> None:
        order = names[n % 8:] + names[:n % 8]  # each batch names them in another order
        async with shared.hold(*(order if n % 2 else reversed(order))):
            await asyncio.sleep(0)
        done.append(n)

    await asyncio.wait_for(asyncio.gather(*(batch(n, clients[n % 3]) for n in range(30))), 60)
    assert sorted(done) == list(range(30))
    await asyncio.gather(*(c.aclose() for c in clients))


async def test_the_lock_of_a_process_killed_holding_it_goes_by_itself():
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, REDIS_URL, NAME], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
    finally:
        holder.kill()
        holder.wait(10)
    redis = redis_db()
    assert redis.exists(NAME)  # killed: nothing released it
    async with SharedLocks(REDIS_URL).hold(NAME):
        assert redis.exists(NAME)
    assert not redis.exists(NAME)
    redis.close()
