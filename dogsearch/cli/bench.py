"""`dogsearch bench`: throughput and latency on this machine, as ratios against the bare model or store (JSON)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="measure throughput and latency on this machine (JSON)")
    bench.add_argument("--only", help="comma-separated: embed, vector, pose, search, ranking, ingest, watches "
                                      "(--device cuda: embed, ingest, topology, search, pose; default: all)")
    bench.add_argument("--quick", action="store_true", help="small sizes: checks that it works, in a minute or two")
    bench.add_argument("--vectors", type=int, metavar="N",
                       help="the vector bench's store size (default 100,000; 10,000 with --quick)")
    bench.add_argument("--device", default="cpu",
                       help="cpu (default), or cuda[:N]: the GPU benchmarks (embed, ingest, topology, search, pose at "
                            "GPU sizes: dogsearch/bench/gpu.py)")
    bench.add_argument("--topologies", metavar="WxE,...",
                       help="--device cuda, section topology: Celery workers x embedder processes to measure "
                            "(default 4x2,8x4)")
    bench.add_argument("--redis-url",
                       help="the Redis database of the ingest's (and topology's) Celery workers, flushed: refused "
                            "unless it is empty or the bench's own (default redis://127.0.0.1:6379/14)")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.add_argument("--out", type=Path, help="also write the JSON to this file")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.bench.run import main
    from dogsearch.core.logs import configure_logging

    configure_logging("WARNING")
    return main(args.only.split(",") if args.only else None, args.quick, args.json, args.out, args.vectors,
                args.device, args.topologies, args.redis_url)
