"""`dogsearch worker`: a Celery worker for bulk jobs (needs DOGSEARCH_BROKER_URL); start more to scale out."""
from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    worker = sub.add_parser("worker", help="a Celery worker for bulk jobs (needs DOGSEARCH_BROKER_URL); "
                                           "start more of them to scale out")
    worker.add_argument("--concurrency", type=int, default=2, help="batches in flight (default 2)")
    worker.add_argument("--pool", choices=["threads", "prefork", "solo"], default="threads")
    worker.add_argument("--loglevel", type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="default: the gateway's LOG_LEVEL setting (INFO)")
    worker.add_argument("--log-format", choices=["json", "text"],
                        help="default: the gateway's LOG_FORMAT setting (json)")
    worker.add_argument("--name", help="the Celery node name (default worker-<pid>@<host>: several workers on one "
                                       "host each their own)")
    worker.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.cli.common import check_environment
    from dogsearch.core.logs import configure_logging
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.worker import run_worker

    check_environment()
    # A worker takes the gateway's settings (compose hands it the gateway's .env), its logging ones too
    settings = GatewaySettings()
    level = args.loglevel or settings.log_level
    configure_logging(level, args.log_format or settings.log_format)
    run_worker(concurrency=args.concurrency, pool=args.pool, loglevel=level, name=args.name)
    return 0
