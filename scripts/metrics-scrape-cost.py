"""What a Prometheus scrape of the search service's /metrics costs as the gallery grows, for its
`dogsearch_search_points`: before (an exact count of every point each scrape, the embedded engine's lock and the
GIL held meanwhile, so searches wait) and after (the engine's own tally, VectorStore.stats()), on the embedded engine,
through the search service's HTTP app in this process, as JSON lines: one per gallery size, as written (the HNSW
graph due). Milliseconds a scrape, median and 95th percentile, and the figure each gave.
For docs/operations.md, "Health, readiness, metrics".

    python scripts/metrics-scrape-cost.py [--sizes 1000,10000,100000] [--dim 384] [--repeat 50]
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.core import GaugeMetricFamily

from dogsearch.services.search.app import create_app
from dogsearch.services.search.metrics import StoredPoints
from dogsearch.services.search.settings import SearchSettings

_probe_cost = importlib.util.spec_from_file_location("probe_cost", Path(__file__).with_name("readiness-probe-cost.py"))
probe_cost = importlib.util.module_from_spec(_probe_cost)
_probe_cost.loader.exec_module(probe_cost)  # its fill(): the same galleries


def exact_count(self: StoredPoints) -> Iterator[GaugeMetricFamily]:
    """The collector as it was until 2026-12-07: an exact count each scrape."""
    yield GaugeMetricFamily("dogsearch_search_points", "entries in the vector collection", value=self.store().count())


async def scrapes(http: httpx.AsyncClient, repeat: int) -> dict[str, float]:
    times, text = [], ""
    for i in range(repeat + 1):
        start = time.perf_counter()
        response = await http.get("/metrics")
        if i:  # the first warms up
            times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, response.text
        text = response.text
    points = float(re.search(r"^dogsearch_search_points (\S+)$", text, flags=re.MULTILINE).group(1))
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
            "points_said": int(points)}


async def measure(n: int, dim: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        probe_cost.fill(data_dir, n, dim)
        app = create_app(SearchSettings(data_dir=data_dir, optimize_after=10**9))  # no index builds meanwhile
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search") as http:
                tally = StoredPoints.collect
                StoredPoints.collect = exact_count
                try:
                    before = await scrapes(http, repeat)
                finally:
                    StoredPoints.collect = tally
                after = await scrapes(http, repeat)
        print(json.dumps({"points": n, "dim": dim, "before": before, "after": after}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="gallery sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=384, help="vector length (the default embedder's: 384)")
    parser.add_argument("--repeat", type=int, default=50, help="scrapes timed a size and way")
    args = parser.parse_args()
    for n in (int(size) for size in args.sizes.split(",")):
        asyncio.run(measure(n, args.dim, args.repeat))


if __name__ == "__main__":
    main()
