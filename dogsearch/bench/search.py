"""Gateway searches by concurrent users against a gallery made of variations of real photos, on the all-in-one
server in its own process: latency with think time, saturated throughput, the server's peak memory."""
from __future__ import annotations

import asyncio
import random
import time

import httpx

from dogsearch.bench.common import peak_rss_mb, percentile, server, variations


async def fill(url: str, n: int, concurrency: int = 8) -> float:
    """Adds n photos through POST /v1/dogs; returns photos/s."""
    photos = variations(n, seed=1)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker() -> None:
            for data, breed in photos:  # one shared generator: each photo goes to one worker
                r = await client.post("/v1/dogs", files={"image": ("p.jpg", data)}, data={"breed": breed})
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


async def users(url: str, queries: list[bytes], n_users: int, seconds: float, think_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=n_users)) as client:
        async def user(seed: int) -> None:
            nonlocal errors
            rng = random.Random(seed)
            await asyncio.sleep(rng.uniform(0, think_s))  # users don't all arrive at the same instant
            while time.monotonic() < deadline:
                start = time.perf_counter()
                try:
                    r = await client.post("/v1/search", files={"image": ("q.jpg", rng.choice(queries))},
                                          data={"k": "10"})
                    ok = r.status_code == 200 and len(r.json()["results"]) == 10
                except httpx.HTTPError:
                    ok = False
                latencies.append((time.perf_counter() - start) * 1000)
                errors += not ok
                if think_s:
                    await asyncio.sleep(think_s)

        start = time.perf_counter()
        await asyncio.gather(*(user(i) for i in range(n_users)))
        elapsed = time.perf_counter() - start
    return {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "errors": errors,
            "n": len(latencies), "per_s": len(latencies) / elapsed}


def run(quick: bool = False, data_dir: str | None = None) -> dict:
    import tempfile

    gallery = 300 if quick else 10_000
    queries = [data for data, _ in variations(100, seed=2)]
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-") as tmp:
        # Dogs are found in every photo as in real use, but a variation cropped to 60 % may keep too little of its
        # dog to be found: it is then stored whole (the check off) rather than refused, so every run has its gallery.
        with server("--data-dir", data_dir or tmp, "--log-format", "text",
                    env={"DOGSEARCH_GATEWAY_REQUIRE_DOG": "false"}) as (url, pid):
            fill_rate = asyncio.run(fill(url, gallery))
            # Uploads went quiet: give the search service the time to build its HNSW index, as in real use.
            time.sleep(0 if quick else 15)
            thinking = asyncio.run(users(url, queries, n_users=10, seconds=8 if quick else 60, think_s=1.0))
            saturated = asyncio.run(users(url, queries, n_users=10, seconds=5 if quick else 30, think_s=0))
            rss = peak_rss_mb(pid)
    return {
        "search_gallery_size": gallery,
        "search_gallery": "variations of the 50 sample photos: random crop (60-100%), mirror, brightness and "
                          "colour +-30-40%, resized to 120-240 px, JPEG quality 70-95; each added via POST /v1/dogs",
        "search_fill_photos_per_s": round(fill_rate, 1),
        "search_p50_ms_10_users": round(thinking["p50"], 1),
        "search_p95_ms_10_users": round(thinking["p95"], 1),
        "search_errors_10_users": thinking["errors"],
        "search_requests_10_users": thinking["n"],
        "search_throughput_saturated": round(saturated["per_s"], 1),
        "search_errors_saturated": saturated["errors"],
        "peak_rss_mb": round(rss, 1),
    }
