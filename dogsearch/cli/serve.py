"""`dogsearch serve [SERVICE]`: every service in one process (the default), or one service in this process."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dogsearch.models.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    from dogsearch.core.settings import ServiceSettings

DEFAULT_PORTS = {"all": 8000, "gateway": 8000, "embedder": 8001, "search": 8002, "pose": 8003}


def add_parser(sub) -> None:
    serve = sub.add_parser("serve", help="run the HTTP services")
    serve.add_argument("service", nargs="?", default="all", choices=list(DEFAULT_PORTS),
                       help="'all' (default): every service in one process; else one service in this process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: gateway/all 8000, embedder 8001, search 8002, pose 8003")
    serve.add_argument("--data-dir", type=Path, help="all: holds vectors/, photos/ and jobs/; search: the "
                                                     "vectors; gateway: the photos, and jobs/ in it unless "
                                                     "DOGSEARCH_JOBS_DATA_DIR is set")
    serve.add_argument("--embedder-url", help="gateway: the embedder's base URL")
    serve.add_argument("--search-url", help="gateway: the search service's base URL")
    serve.add_argument("--pose-url", help="gateway: the pose service's base URL")
    serve.add_argument("--model", help=f"embedder model name (default: {DEFAULT_MODEL})")
    serve.add_argument("--device", help="embedder device: cpu, cuda, cuda:N")
    serve.add_argument("--log-format", choices=["json", "text"],
                       help="default: the service's LOG_FORMAT setting (json); all: the gateway's")
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from dogsearch.cli.common import check_environment
    from dogsearch.core.access import InvalidKeyEntry
    from dogsearch.core.logs import configure_logging
    from dogsearch.core.memory import frozen_once_started
    from dogsearch.services.ops import BodyTimeout
    from dogsearch.services.server import ServerSettings

    check_environment()
    settings = service_settings(args.service)()
    configure_logging(settings.log_level, args.log_format or settings.log_format)
    try:
        problem = exposure_problem(args, settings)
    except InvalidKeyEntry as exc:  # the keys file: unreadable, a bad line, a name twice
        problem = f"invalid API keys: {exc.reason}"
    if problem:
        raise SystemExit(f"dogsearch serve: {problem}")
    server = ServerSettings()  # slow clients are cut off (header and body deadlines): services/server.py
    app = BodyTimeout(frozen_once_started(build_app(args)), server.body_timeout_s)
    # proxy_headers off: uvicorn would believe X-Forwarded-For from 127.0.0.1 by default; which proxies are
    # believed is DOGSEARCH_GATEWAY_TRUSTED_PROXIES's to say (services/gateway/security.py).
    uvicorn.run(app, host=args.host, port=args.port or DEFAULT_PORTS[args.service], log_config=None,
                access_log=False, timeout_graceful_shutdown=10, proxy_headers=False, **server.uvicorn_options())
    return 0


def service_settings(service: str) -> type[ServiceSettings]:
    """The settings class of SERVICE (all: the gateway's)."""
    if service in ("all", "gateway"):
        from dogsearch.services.gateway.settings import GatewaySettings as Settings
    elif service == "embedder":
        from dogsearch.services.embedder.settings import EmbedderSettings as Settings
    elif service == "search":
        from dogsearch.services.search.settings import SearchSettings as Settings
    else:
        from dogsearch.services.pose.settings import PoseSettings as Settings
    return Settings


def exposure_problem(args: argparse.Namespace, settings: ServiceSettings) -> str | None:
    """Why this service must not start where it is bound (dogsearch/core/access.py decides), or None: the gateway
    without an admin key off loopback (or with REQUIRE_KEYS), an internal service off loopback without its key."""
    from dogsearch.core import access

    if args.service in ("all", "gateway"):
        return access.exposure_problem(args.host, settings.keyring, settings.require_keys)
    return access.internal_problem(args.service, args.host, settings.internal_key is not None)


def build_app(args: argparse.Namespace):
    from dogsearch.services.embedder.settings import EmbedderSettings

    embedder_overrides = {k: v for k, v in (("model", args.model), ("device", args.device)) if v}
    if args.service == "all":
        from dogsearch.services.allinone import create_all_in_one

        return create_all_in_one(args.data_dir or Path(".data"),
                                 embedder_settings=EmbedderSettings(**embedder_overrides))
    if args.service == "embedder":
        from dogsearch.services.embedder.app import create_app

        return create_app(EmbedderSettings(**embedder_overrides))
    if args.service == "search":
        from dogsearch.services.search.app import create_app
        from dogsearch.services.search.settings import SearchSettings

        return create_app(SearchSettings(**({"data_dir": args.data_dir} if args.data_dir else {})))
    if args.service == "pose":
        from dogsearch.services.pose.app import create_app
        from dogsearch.services.pose.settings import PoseSettings

        return create_app(PoseSettings(**({"device": args.device} if args.device else {})))
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.services.gateway.app import create_app
    from dogsearch.services.gateway.settings import GatewaySettings

    overrides = {k: v for k, v in (("embedder_url", args.embedder_url), ("search_url", args.search_url),
                                   ("pose_url", args.pose_url), ("data_dir", args.data_dir)) if v}
    # Embedded job state and unpacked uploads go under the gateway's data directory (ids never clash: the
    # photo store's sub-folders are two hex digits), unless DOGSEARCH_JOBS_DATA_DIR says where (the workers, which
    # take no --data-dir, read that one).
    jobs = JobsSettings()
    if args.data_dir and "data_dir" not in jobs.model_fields_set:
        jobs = JobsSettings(data_dir=args.data_dir / "jobs")
    return create_app(GatewaySettings(**overrides), jobs_settings=jobs)
