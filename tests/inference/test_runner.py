from __future__ import annotations

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
