from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

from dogsearch.inference.runner import inference_pool


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
