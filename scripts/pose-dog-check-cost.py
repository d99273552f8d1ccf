"""What the dog check of the gateway's POST /v1/pose (a photo sent without a box: `Gallery.dog_boxes`, the
embedder's detector and verifier) costs next to the pose itself: the shipped models, all services in this process,
on the sample queries; milliseconds of the process's CPU (all its threads) and of wall time a photo, medians, as one
JSON line. For docs/pose.md.

    python scripts/pose-dog-check-cost.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from dogsearch.services.allinone import create_all_in_one

ROOT = Path(__file__).resolve().parents[1]


async def measure(rounds: int) -> dict:
    photos = [path.read_bytes() for path in sorted((ROOT / "samples" / "queries").glob("*/*.jpg"))]
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_all_in_one(Path(data_dir))
        parts = app.state.parts
        calls = {"check": parts.gallery.dog_boxes, "pose": parts.pose.pose}
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
        async with app.router.lifespan_context(app):
            for data in photos[:3]:  # the models loaded, their threads warm
                for call in calls.values():
                    await call(data)
            for _ in range(rounds):
                for data in photos:
                    for name, call in calls.items():
                        cpu, wall = time.process_time(), time.perf_counter()
                        await call(data)
                        times[name].append((time.process_time() - cpu, time.perf_counter() - wall))
    return {"photos": len(photos) * rounds} | {
        f"{name}_{kind}_ms": round(statistics.median(t[i] for t in values) * 1000, 1)
        for name, values in times.items() for i, kind in enumerate(("cpu", "wall"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each photo is measured")
    print(json.dumps(asyncio.run(measure(parser.parse_args().rounds))))


if __name__ == "__main__":
    main()
