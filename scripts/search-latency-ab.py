"""Search latency of server variants on one kept gallery, so that each variant costs minutes, not a 10,000-photo fill:
`fill DIR` once (POST /v1/dogs of `dogsearch bench`'s photo variations), then `users DIR LABEL` once a variant, the
variant being the environment (`DOGSEARCH_EMBEDDER_ALONE_THREADS=1 python scripts/search-latency-ab.py users ...`) or
the tree (another checkout's python). Each `users` run restarts the all-in-one server on DIR and measures 40 lone
searches one after another (the median of the last 30, and the server's CPU ms a search over those 30), then
`dogsearch bench`'s 10 users with 1 s think time for 60 s, then 10 users without think time for 20 s. Run the
variants in turns (A B A B) on a quiet machine. Prints one JSON line a run and appends it to --out.

    python scripts/search-latency-ab.py fill /tmp/gallery --photos 10000
    python scripts/search-latency-ab.py users /tmp/gallery default --out ab.jsonl
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx

from dogsearch.bench import search as bench_search
from dogsearch.bench.common import process_cpu_seconds, server, variations

ENV = {"DOGSEARCH_GATEWAY_REQUIRE_DOG": "false"}  # as `dogsearch bench`: a variation whose dog was cropped away


def lone(url: str, pid: int, queries: list[bytes], n: int = 40, warm: int = 10) -> tuple[float, float]:
    """(median ms, the server's CPU ms) of a search alone, after ``warm`` searches."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for i, query in enumerate(queries[:n]):
            if i == warm:
                cpu = process_cpu_seconds(pid)
            start = time.perf_counter()
            client.post("/v1/search", files={"image": ("q.jpg", query)}, data={"k": "10"}).raise_for_status()
            times.append(1000 * (time.perf_counter() - start))
        cpu = process_cpu_seconds(pid) - cpu
    return statistics.median(times[warm:]), 1000 * cpu / (n - warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["fill", "users"])
    parser.add_argument("dir", type=Path, help="the server's --data-dir, kept between runs")
    parser.add_argument("label", nargs="?", default="", help="users: the variant's name in the output")
    parser.add_argument("--photos", type=int, default=10_000, help="fill: photos added")
    parser.add_argument("--out", type=Path, help="users: append the JSON line here too")
    args = parser.parse_args()
    with server("--data-dir", str(args.dir), "--log-format", "text", env=ENV) as (url, pid):
        if args.mode == "fill":
            rate = asyncio.run(bench_search.fill(url, args.photos))
            time.sleep(20)  # uploads went quiet: the search service builds its HNSW index
            print(json.dumps({"photos": args.photos, "fill_photos_per_s": round(rate, 1)}))
            return
        queries = [data for data, _ in variations(100, seed=2)]
        alone, alone_cpu = lone(url, pid, queries)
        thinking = asyncio.run(bench_search.users(url, queries, n_users=10, seconds=60, think_s=1.0))
        saturated = asyncio.run(bench_search.users(url, queries, n_users=10, seconds=20, think_s=0))
    row = {"label": args.label, "lone_p50_ms": round(alone, 1), "lone_server_cpu_ms": round(alone_cpu, 1),
           "p50_ms_10_users": round(thinking["p50"], 1), "p95_ms_10_users": round(thinking["p95"], 1),
           "requests": thinking["n"],
           "errors": thinking["errors"] + saturated["errors"], "saturated_per_s": round(saturated["per_s"], 1)}
    print(json.dumps(row))
    if args.out:
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
