"""What the gateway's readiness probe costs the search service as the gallery grows: the read of the gallery's model
each probe makes, before (GET /v1/collection: dim, model and an exact count of every point) and after
(GET /v1/collection?count=false: dim and model from the collection's metadata), on the embedded engine, through the
search service's HTTP app in this process, as JSON lines: one per gallery size, freshly written (the HNSW graph
due) and after the index build (as the service keeps it). Milliseconds a probe, median and 95th percentile.
For docs/operations.md, "Health, readiness, metrics".

    python scripts/readiness-probe-cost.py [--sizes 1000,10000,100000] [--dim 384] [--repeat 50] [--states fresh]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid

import httpx
import numpy as np

from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.services.search.app import create_app
from dogsearch.services.search.settings import SearchSettings

BATCH = 5_000
PROBES = {"before": "/v1/collection", "after": "/v1/collection?count=false"}


def fill(data_dir: str, n: int, dim: int) -> None:
    """`n` random unit vectors with a payload of the gallery's shape, in the collection the service opens."""
    rng = np.random.default_rng(0)
    with EdgeStore(data_dir, "dogs") as store:
        store.ensure_collection(dim, "bench-model", {"breed": "keyword", "name": "keyword"})
        for start in range(0, n, BATCH):
            vectors = rng.normal(size=(min(BATCH, n - start), dim)).astype(np.float32)
            store.upsert([Point(str(uuid.UUID(int=start + i + 1)), v.tolist(),
                                {"breed": f"breed-{(start + i) % 100}", "name": f"dog {start + i}", "cover": True})
                          for i, v in enumerate(vectors)])


async def probes(http: httpx.AsyncClient, repeat: int) -> dict[str, dict[str, float]]:
    out = {}
    for name, path in PROBES.items():
        assert (await http.get(path)).status_code == 200  # warm
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            response = await http.get(path)
            times.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, response.text
        out[name] = {"p50_ms": round(float(np.percentile(times, 50)), 3),
                     "p95_ms": round(float(np.percentile(times, 95)), 3)}
    return out


async def measure(n: int, dim: int, repeat: int, states: list[str]) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        fill(data_dir, n, dim)
        # no builds of its own while it is measured: the index is built when asked, between the two rounds
        app = create_app(SearchSettings(data_dir=data_dir, optimize_after=10**9))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search",
                                         timeout=7200) as http:
                for state in states:
                    if state == "indexed":
                        assert (await http.post("/v1/optimize")).status_code == 200
                    print(json.dumps({"points": n, "dim": dim, "state": state, **await probes(http, repeat)}),
                          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="gallery sizes, comma-separated")
    parser.add_argument("--dim", type=int, default=384, help="vector length (the default embedder's: 384)")
    parser.add_argument("--repeat", type=int, default=50, help="probes timed a size and state")
    parser.add_argument("--states", default="fresh,indexed",
                        help="fresh (as written) and/or indexed (after the HNSW build: over half an hour at a million)")
    args = parser.parse_args()
    states = args.states.split(",")
    if not set(states) <= {"fresh", "indexed"}:
        parser.error(f"--states: fresh and/or indexed, not {args.states!r}")
    for n in (int(size) for size in args.sizes.split(",")):
        asyncio.run(measure(n, args.dim, args.repeat, states))


if __name__ == "__main__":
    main()
