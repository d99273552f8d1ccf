from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path

import pytest
import torch

from dogsearch.inference.runner import BatchedModel, LazyModel, ModelUnavailable, inference_pool


def test_each_pool_thread_keeps_its_own_team_size_whatever_other_threads_set():
    one, two = inference_pool("a", 2, 1), inference_pool("b", 1, 2)
    try:
        # the pools start one after the other; each sets torch's process-wide default as it starts
        assert one.submit(torch.get_num_threads).result() == 1
        assert two.submit(torch.get_num_threads).result() == 2
        assert one.submit(torch.get_num_threads).result() == 1
    finally:
        one.shutdown()
        two.shutdown()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names through /proc: Linux")
def test_pool_threads_carry_their_name_where_top_shows_it():
    pool = inference_pool("embedder", 1, 1)
    try:
        comm = pool.submit(lambda: Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text()).result()
        assert comm.strip() == "embedder-inf"
    finally:
        pool.shutdown()


class Flaky:
    """A model factory whose first `fails` builds fail, as weights briefly unreadable do."""

    def __init__(self, fails: int) -> None:
        self.fails, self.calls = fails, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.fails:
            raise OSError(f"weights unreadable ({self.calls})")
        return "model"


def test_a_model_that_failed_to_load_is_tried_again_after_a_growing_back_off():
    now = [0.0]
    factory = Flaky(3)
    model = LazyModel(factory, "m", retry_s=5, retry_max_s=8, clock=lambda: now[0])
    with pytest.raises(OSError, match=r"\(1\)"):
        model.get()
    for now[0] in (0.0, 4.9):  # in its back-off, requests fail at once, saying when the next try is
        with pytest.raises(ModelUnavailable, match=r"weights unreadable \(1\) \(1 try; next try in \d s\)"):
            model.get()
    assert factory.calls == 1
    now[0] = 5.0
    with pytest.raises(OSError, match=r"\(2\)"):
        model.get()
    assert model.retry_in == 8  # 10 s, capped
    now[0] = 12.9
    with pytest.raises(ModelUnavailable, match=r"\(2 tries; next try in 1 s\)"):
        model.get()
    now[0] = 13.0
    with pytest.raises(OSError, match=r"\(3\)"):
        model.get()
    now[0] = 21.0
    assert model.get() == "model" and factory.calls == 4
    assert model.error is None and model.failure() is None


async def test_readiness_tries_a_failed_preload_again_once_its_back_off_is_over():
    """Behind a balancer that routes by readiness, a replica that is not ready gets no requests: its probes must be
    what tries the model again."""
    factory = Flaky(1)
    model = BatchedModel(factory, "m", lambda m, items: items, max_batch_size=1, max_wait_s=0, max_queue=1,
                         timeout_s=1, retry_s=0.3)
    async with model.running(preload=True):
        while model.error is None:
            assert model.readiness(preload=True) == "model loading"
            await asyncio.sleep(0.01)
        assert model.readiness(preload=True) == "m model failed to load: weights unreadable (1) (1 try; next try in " \
                                                "1 s)"  # rounded up: 0.3 s
        assert factory.calls == 1
        await asyncio.sleep(0.35)
        for _ in range(200):
            if model.readiness(preload=True) is None:
                break
            await asyncio.sleep(0.01)
        assert model.readiness(preload=True) is None and factory.calls == 2
        assert await model.submit([1]) == [1]
