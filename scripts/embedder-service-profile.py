"""Where the embedder service's CPU goes under load (docs/operations.md, "ONNX Runtime's threads and batches"):
`dogsearch serve embedder` in its own process with the DOGSEARCH_EMBEDDER_* settings of the environment, CONC
clients posting one photo each, N photos in all; then the CPU ms a photo of each of its threads' groups (`main`: the
event loop, HTTP and multipart; `embedder-inf`: the inference threads; `python`: decoding and preprocessing, ONNX
Runtime's and OpenMP's own threads) from /proc, the client's, the batcher's batch sizes and run times from
/metrics, and a lone photo's latency. CPU ms a photo is what a machine shared with other jobs disturbs least.
Prints JSON.

    DOGSEARCH_EMBEDDER_BATCH_MAX_SIZE=8 python scripts/embedder-service-profile.py [--images 48] [--clients 16]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from dogsearch.bench.common import cpu_seconds, sample_photos, server  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (its name, CPU seconds so far)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue  # the thread ended
        fields = stat.rsplit(")", 1)[1].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


async def post(client: httpx.AsyncClient, photo: bytes) -> None:
    (await client.post("/v1/embed", files=[("images", ("p.jpg", photo))])).raise_for_status()


async def load(url: str, photos: list[bytes], n: int, clients: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await asyncio.gather(*(post(client, photos[i % len(photos)]) for i in range(clients)))  # warm-up
        queue = iter(range(n))

        async def user() -> None:
            for i in queue:
                await post(client, photos[i % len(photos)])

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(clients)))
        return time.perf_counter() - start


async def lone(url: str, photos: list[bytes], n: int) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        times = []
        for i in range(n + 2):
            start = time.perf_counter()
            await post(client, photos[i % len(photos)])
            times.append(time.perf_counter() - start)
        return 1000 * sorted(times[2:])[(n - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--lone", type=int, default=10, help="lone photos timed after the load")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sample_photos()]
    with server("embedder") as (url, pid):
        before, client_cpu = thread_cpu(pid), cpu_seconds()
        wall = asyncio.run(load(url, photos, args.images, args.clients))
        after, client_cpu = thread_cpu(pid), cpu_seconds() - client_cpu
        lone_ms = asyncio.run(lone(url, photos, args.lone))
        metrics = httpx.get(f"{url}/metrics").text
    groups: dict[str, float] = {}
    for tid, (name, seconds) in after.items():
        key = "main" if tid == pid else name
        groups[key] = groups.get(key, 0.0) + seconds - before.get(tid, (name, 0.0))[1]
    batcher = {}
    for line in metrics.splitlines():
        if 'batcher="embedder"' in line and line.split("{")[0].endswith(("_sum", "_count")):
            batcher[line.split("{")[0]] = round(float(line.split()[-1]), 3)
    print(json.dumps({
        "settings": {k.removeprefix("DOGSEARCH_EMBEDDER_"): v for k, v in os.environ.items()
                     if k.startswith("DOGSEARCH_EMBEDDER_")},
        "images_per_s": round(args.images / wall, 2),
        "lone_image_ms": round(lone_ms, 1),
        "server_cpu_ms_per_image": round(1000 * sum(groups.values()) / args.images, 1),
        "server_cpu_ms_per_image_by_thread": {k: round(1000 * v / args.images, 1) for k, v in sorted(groups.items())
                                              if v > 0},
        "client_cpu_ms_per_image": round(1000 * client_cpu / args.images, 1),
        "batcher_since_start": batcher,
        "load_average": os.getloadavg(),
    }, indent=2))


if __name__ == "__main__":
    main()
