"""`dogsearch worker`: a Celery worker for bulk jobs (needs DOGSEARCH_BROKER_URL); start more to scale out."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    worker = sub.add_parser("worker", help="a Celery worker for bulk jobs (needs DOGSEARCH_BROKER_URL); "
                                           "start more of them to scale out")
    worker.add_argument("--concurrency", type=int, default=2, help="batches in flight (default 2)")
    worker.add_argument("--pool", choices=["threads", "prefork", "solo"], default="threads")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--name", help="the Celery node name (default worker-<pid>@<host>: several workers on one "
                                       "host each their own)")
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.cli.common import check_environment
    from dogsearch.core.logs import configure_logging
    from dogsearch.services.worker import run_worker

    configure_logging(args.loglevel)
    check_environment()
    run_worker(concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel, name=args.name)
    return 0
