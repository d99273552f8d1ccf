"""The locks shared through Redis (gallery/locks.py, SharedLocks): a holder keeps its lock past the ttl for as long as
it holds it (renewed), and a process that dies holding one frees it within the ttl. Each SharedLocks is a client of
its own, as each process has (its own tokens)."""
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


async def test_a_lock_held_past_its_ttl_is_renewed_until_its_release():
    holder, other = SharedLocks(REDIS_URL, ttl_s=0.6), SharedLocks(REDIS_URL, ttl_s=0.6)
    said: list[str] = []
    held = asyncio.Event()

    async def hold_long() -> None:
        async with holder.hold(NAME):
            said.append("held")
            held.set()
            await asyncio.sleep(2.0)  # over three ttls
            said.append("released")

    async def take() -> None:
        await held.wait()
        async with other.hold(NAME):
            said.append("taken")

    await asyncio.gather(hold_long(), take())
    assert said == ["held", "released", "taken"]


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
