from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dogsearch.inference.batching import BatchTimeout, DynamicBatcher, QueueFull


def make(fn=None, **kwargs):
    calls: list[list[int]] = []

    def double(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * i for i in items]

    options = {"name": "t", "max_batch_size": 4, "max_wait_s": 0.05, "max_queue": 100, "timeout_s": 5.0} | kwargs
    return DynamicBatcher(fn or double, **options), calls


async def test_requests_arriving_together_share_one_batch():
    batcher, calls = make()
    results = await asyncio.gather(*(batcher.submit([i]) for i in range(4)))
    assert results == [[0], [2], [4], [6]]
    assert calls == [[0, 1, 2, 3]]
    await batcher.aclose()


async def test_batches_never_exceed_the_max_size_and_keep_order():
    batcher, calls = make()
    results = await asyncio.gather(batcher.submit([1, 2, 3]), batcher.submit([4, 5]), batcher.submit(list(range(10))))
    assert results == [[2, 4, 6], [8, 10], [2 * i for i in range(10)]]
    assert all(len(c) <= 4 for c in calls)
    assert sorted(i for c in calls for i in c) == sorted([1, 2, 3, 4, 5, *range(10)])
    await batcher.aclose()


async def test_a_lone_request_waits_at_most_max_wait():
    batcher, calls = make(max_wait_s=0.02)
    assert await batcher.submit([7]) == [14]
    assert calls == [[7]]
    await batcher.aclose()


async def test_full_queue_is_refused_at_once():
    gate = threading.Event()

    def slow(items):
        gate.wait(5)
        return items

    batcher, _ = make(slow, max_batch_size=2, max_queue=4, max_wait_s=0)
    first = asyncio.ensure_future(batcher.submit([1, 2]))  # running, holds the worker
    await asyncio.sleep(0.05)
    queued = asyncio.ensure_future(batcher.submit([3, 4, 5, 6]))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFull):
        await batcher.submit([7])
    gate.set()
    assert await first == [1, 2] and await queued == [3, 4, 5, 6]
    await batcher.aclose()


async def test_timeout_gives_up_and_the_batcher_goes_on():
    def slow(items):
        time.sleep(0.3)
        return items

    batcher, _ = make(slow, timeout_s=0.1, max_wait_s=0)
    with pytest.raises(BatchTimeout):
        await batcher.submit([1])
    batcher.timeout_s = 5
    assert await batcher.submit([2]) == [2]
    await batcher.aclose()


async def test_an_error_reaches_every_request_of_its_batch():
    def broken(items):
        raise RuntimeError("boom")

    batcher, _ = make(broken)
    results = await asyncio.gather(batcher.submit([1]), batcher.submit([2]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and str(r) == "boom" for r in results)
    await batcher.aclose()


async def test_replicas_run_batches_side_by_side_and_each_gets_its_own_results():
    both_running = threading.Barrier(2, timeout=5)  # passes only if two batches are in fn at the same time

    def meet(items):
        both_running.wait()
        return [10 * i for i in items]

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        batcher, _ = make(meet, max_batch_size=2, max_wait_s=0, concurrency=2, executor=pool)
        results = await asyncio.gather(batcher.submit([1, 2]), batcher.submit([3, 4]))
        assert results == [[10, 20], [30, 40]]
        await batcher.aclose()


async def test_no_more_batches_at_once_than_replicas_and_the_next_batch_fills_meanwhile():
    running, most, lock = 0, 0, threading.Lock()
    release = threading.Event()
    calls = []

    def counted(items):
        nonlocal running, most
        with lock:
            calls.append(list(items))
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
        return items

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        batcher, _ = make(counted, max_batch_size=4, max_wait_s=0, concurrency=2, executor=pool)
        busy = []
        for i in (1, 2):
            busy.append(asyncio.ensure_future(batcher.submit([i])))
            await asyncio.sleep(0.05)  # a batch of one on each replica
        waiting = [asyncio.ensure_future(batcher.submit([i])) for i in (3, 4, 5)]
        await asyncio.sleep(0.05)
        release.set()
        assert [await f for f in busy + waiting] == [[1], [2], [3], [4], [5]]
        assert most == 2
        assert sorted(map(sorted, calls)) == [[1], [2], [3, 4, 5]]  # the three that waited made one batch
        await batcher.aclose()


def test_concurrency_must_be_positive():
    with pytest.raises(ValueError, match="concurrency"):
        make(concurrency=0)


async def test_each_run_records_its_wall_and_cpu_time_even_when_it_fails():
    from prometheus_client import REGISTRY

    def count(metric: str) -> float:
        return REGISTRY.get_sample_value(f"{metric}_count", {"batcher": "timed"}) or 0.0

    def busy(items: list[int]) -> list[int]:
        end = time.thread_time() + 0.02  # CPU, not sleep: the thread's CPU time must see it
        while time.thread_time() < end:
            pass
        if items == [-1]:
            raise ValueError("bad item")
        return items

    batcher, _ = make(busy, name="timed", max_wait_s=0)
    before = count("dogsearch_batch_run_seconds"), REGISTRY.get_sample_value(
        "dogsearch_batch_run_cpu_seconds_sum", {"batcher": "timed"}) or 0.0
    await batcher.submit([1])
    with pytest.raises(ValueError):
        await batcher.submit([-1])
    assert count("dogsearch_batch_run_seconds") - before[0] == 2
    assert count("dogsearch_batch_run_cpu_seconds") == count("dogsearch_batch_run_seconds")
    cpu = REGISTRY.get_sample_value("dogsearch_batch_run_cpu_seconds_sum", {"batcher": "timed"}) - before[1]
    assert cpu >= 0.04
    await batcher.aclose()


async def test_a_caller_that_goes_away_leaves_no_error_unread(caplog):
    """A request cancelled while its batch runs (Ctrl-C on a job run in this process): asyncio logged "exception
    was never retrieved" for the gathered results nobody awaited any more."""
    import gc

    release = threading.Event()

    def slow(items):
        release.wait(5)
        return items

    batcher, _ = make(slow)
    task = asyncio.create_task(batcher.submit([1]))
    await asyncio.sleep(0.1)  # its batch is running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()
    await asyncio.sleep(0.1)
    await batcher.aclose()
    del task
    gc.collect()
    assert "never retrieved" not in caplog.text
