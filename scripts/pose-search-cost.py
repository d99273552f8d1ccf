"""What one stored dog posed by a search (`pose=true`, `rerank=pose`) costs: the pose service's call on the whole
stored photo (decoded at full size, the dog's box posed; here the photo whole, as a dog stored whole is), the shipped
pose model, all services in this process; the sample gallery's photos as they are (ImageNet's, ~500 x 375) and
enlarged to a phone's 12 MP JPEG (4032 x 3024). Milliseconds of the process's CPU (all its threads) and of wall time
a call, medians, as one JSON line. For docs/pose.md, "Pose-aware re-ranking".

    python scripts/pose-search-cost.py [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from dogsearch.services.allinone import create_all_in_one

ROOT = Path(__file__).resolve().parents[1]
PHONE = (4032, 3024)


def phone_jpeg(data: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").resize(PHONE).save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def measure(rounds: int) -> dict:
    photos = [path.read_bytes() for path in sorted((ROOT / "samples" / "gallery").glob("*/*.jpg"))]
    sets = {"sample": photos, "12mp": [phone_jpeg(data) for data in photos]}
    out: dict = {"photos": len(photos) * rounds}
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_all_in_one(Path(data_dir))
        pose = app.state.parts.pose
        async with app.router.lifespan_context(app):
            for name, datas in sets.items():
                boxes = [(0.0, 0.0, *map(float, Image.open(io.BytesIO(d)).size)) for d in datas]
                for data, box in list(zip(datas, boxes, strict=True))[:3]:  # the model loaded, its thread warm
                    await pose.pose(data, [box])
                times = []
                for _ in range(rounds):
                    for data, box in zip(datas, boxes, strict=True):
                        cpu, wall = time.process_time(), time.perf_counter()
                        await pose.pose(data, [box])
                        times.append((time.process_time() - cpu, time.perf_counter() - wall))
                out[f"{name}_cpu_ms"] = round(statistics.median(c for c, _ in times) * 1000, 1)
                out[f"{name}_wall_ms"] = round(statistics.median(w for _, w in times) * 1000, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    print(json.dumps(asyncio.run(measure(parser.parse_args().rounds))))


if __name__ == "__main__":
    main()
