"""What the locks that gateway replicas and workers share through Redis cost an add: taking and releasing a batch's
photo locks (`PhotoLocks.hold`, as an add of that batch does: all of them tried in one round trip, none held by
another here) in this process alone (no broker) and behind Redis too (a broker set), with nothing done under them.
Milliseconds a batch and a photo, median and 95th percentile, as one JSON object. For docs/scaling.md, "More
gateways".

    python scripts/replica-lock-cost.py [--redis redis://127.0.0.1:6379/12] [--batch 32] [--repeat 50]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import numpy as np

from dogsearch.gallery.locks import PhotoLocks, SharedLocks


async def timed(locks: PhotoLocks, batch: int, repeat: int) -> dict[str, float]:
    times = []
    for _ in range(repeat + 1):
        ids = [uuid.uuid4().hex for _ in range(batch)]  # new photos, as a bulk job's are
        start = time.perf_counter()
        async with locks.hold(ids):
            pass
        times.append((time.perf_counter() - start) * 1000)
    times = times[1:]  # the first opens the connection
    return {"batch_p50_ms": round(float(np.percentile(times, 50)), 3),
            "batch_p95_ms": round(float(np.percentile(times, 95)), 3),
            "photo_p50_ms": round(float(np.percentile(times, 50)) / batch, 4)}


async def main(args: argparse.Namespace) -> None:
    shared = SharedLocks(args.redis)
    try:
        alone = await timed(PhotoLocks(), args.batch, args.repeat)
        redis = await timed(PhotoLocks(shared), args.batch, args.repeat)
    finally:
        await shared.aclose()
    print(json.dumps({"batch": args.batch, "repeat": args.repeat, "in_process": alone, "with_redis": redis,
                      "ratio_p50": round(redis["batch_p50_ms"] / max(alone["batch_p50_ms"], 1e-6), 1)}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
