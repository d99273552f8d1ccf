"""How to spread a CPU forward over this machine's cores: one intra-op team of all threads, or several replicas
(each its own thread with fewer intra-op threads) running batches side by side; each with glibc's default malloc
and with the services' (dogsearch/core/memory.py). Prints JSON; used to choose the embedder's `replicas` default
(docs/operations.md). Needs only torch and timm: the model is built with random weights, which run as fast as
trained ones.

    python scripts/cpu-thread-layout.py [--model efficientnet_lite0] [--batch 8] [--seconds 6]
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def measure(model_name: str, batch: int, replicas: int, threads: int, seconds: float, tuned: bool) -> dict:
    """Images/s with `replicas` threads each running forwards of `batch` with `threads` intra-op threads, and
    the median time of one lone forward of one image on such a replica."""
    if tuned:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from dogsearch.core.memory import tune_malloc

        tune_malloc()
    import timm
    import torch

    model = timm.create_model(model_name, pretrained=False).eval()
    x = torch.randn(batch, 3, 224, 224)
    counts = [0] * replicas
    stop = time.perf_counter() + 1.0 + seconds
    start_line = threading.Barrier(replicas + 1)

    def replica(index: int) -> None:
        torch.get_num_threads()  # torch sets a new thread's team size on first use: do that, then ours
        torch.set_num_threads(threads)
        with torch.inference_mode():
            model(x)
            start_line.wait()
            while time.perf_counter() < stop:
                model(x)
                counts[index] += batch

    workers = [threading.Thread(target=replica, args=(i,)) for i in range(replicas)]
    for w in workers:
        w.start()
    start_line.wait()
    began = time.perf_counter()
    for w in workers:
        w.join()
    rate = sum(counts) / (time.perf_counter() - began)
    torch.set_num_threads(threads)
    one = x[:1]
    with torch.inference_mode():
        model(one)
        times = []
        for _ in range(15):
            t = time.perf_counter()
            model(one)
            times.append(time.perf_counter() - t)
    return {"replicas": replicas, "threads": threads, "malloc": "tuned" if tuned else "glibc",
            "images_per_s": round(rate, 1), "lone_image_ms": round(1000 * sorted(times)[len(times) // 2], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--one", nargs=3, type=int, metavar=("REPLICAS", "THREADS", "TUNED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # one layout, in a process of its own: thread teams left over from another layout would skew it
        replicas, threads, tuned = args.one
        print(json.dumps(measure(args.model, args.batch, replicas, threads, args.seconds, bool(tuned))))
        return
    cores = len(os.sched_getaffinity(0))
    layouts = sorted({(r, cores // r) for r in (1, 2, 4, 8, 16, 32) if r <= cores})
    results = []
    for (replicas, threads), tuned in itertools.product(layouts, (0, 1)):
        out = subprocess.run([sys.executable, __file__, "--model", args.model, "--batch", str(args.batch),
                              "--seconds", str(args.seconds), "--one", str(replicas), str(threads), str(tuned)],
                             check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(json.dumps({"model": args.model, "batch": args.batch, "cores": cores, "layouts": results}))


if __name__ == "__main__":
    main()
