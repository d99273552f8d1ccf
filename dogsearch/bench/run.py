"""Runs the benchmarks in one process, one after another (never two at once: they would measure each other),
and writes one JSON object."""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

from dogsearch.bench.ingest import BENCH_REDIS, redis_refusal
from dogsearch.core.settings import usable_cores

# name -> module with run(quick) -> dict; in the order they run.
BENCHMARKS = {
    "embed": "dogsearch.bench.embed",
    "vector": "dogsearch.bench.vector",
    "pose": "dogsearch.bench.pose",
    "search": "dogsearch.bench.search",
    "ranking": "dogsearch.bench.ranking",
    "ingest": "dogsearch.bench.ingest",
    "watches": "dogsearch.bench.watches",
}
MIN_VECTORS = 100  # fewer: the filters would match next to nothing


def machine(quick: bool) -> dict:
    return {
        "quick": quick,
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": usable_cores(), "platform": platform.platform(),
                    "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "torch": torch.__version__},
    }


def run_all(names: list[str], quick: bool, vectors: int | None = None, redis_url: str = BENCH_REDIS) -> dict:
    """vectors: the vector bench's store size (None: its default for quick or not); redis_url: the ingest's Celery
    database."""
    options: dict[str, dict] = {"vector": {"vectors": vectors}, "ingest": {"redis_url": redis_url}}
    result = machine(quick)
    for name in names:
        start = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        result.update(importlib.import_module(BENCHMARKS[name]).run(quick=quick, **options.get(name, {})))
        result[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
    return result


def main(names: list[str] | None, quick: bool, as_json: bool, out: Path | None, vectors: int | None = None,
         device: str = "cpu", topologies: str | None = None, redis_url: str | None = None) -> int:
    from dogsearch.bench import gpu

    redis_url = redis_url or BENCH_REDIS

    known = list(BENCHMARKS) if device == "cpu" else list(gpu.SECTIONS)
    unknown = set(names or []) - set(known)
    if unknown:
        print(f"dogsearch bench: unknown benchmark(s) {sorted(unknown)} on {device}; choose from {known}",
              file=sys.stderr)
        return 2
    # said now rather than after the benchmarks before the one that would flush it
    if {"ingest", "topology"} & set(names or known) and (reason := redis_refusal(redis_url)):
        print(f"dogsearch bench: {reason}", file=sys.stderr)
        return 2
    try:
        shapes = gpu.parse_topologies(topologies) if topologies else None
    except ValueError as exc:
        print(f"dogsearch bench: --topologies: {exc}", file=sys.stderr)
        return 2
    if device != "cpu":
        if not device.startswith("cuda") or not torch.cuda.is_available():
            print(f"dogsearch bench: --device {device}: torch sees no CUDA GPU here (cuda, cuda:N)", file=sys.stderr)
            return 2
        result = machine(quick) | gpu.run(quick, device, names, shapes, redis_url)
        return _write(result, as_json, out) or (1 if any(k.endswith("_error") for k in result) else 0)
    if vectors is not None and vectors < MIN_VECTORS:
        print(f"dogsearch bench: --vectors is at least {MIN_VECTORS}, got {vectors}", file=sys.stderr)
        return 2
    return _write(run_all(names or list(BENCHMARKS), quick, vectors, redis_url), as_json, out)


def _write(result: dict, as_json: bool, out: Path | None) -> int:
    text = json.dumps(result, indent=None if as_json else 2)
    if out:
        out.write_text(text + "\n")
    print(text)
    return 0
