"""The `dogsearch` command: serve the services (all in one process, or one each), index photos, search."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError

from common.logs import configure_logging

DEFAULT_PORTS = {"all": 8000, "gateway": 8000, "embedder": 8001, "search": 8002}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ValidationError as exc:  # settings from env or flags: fail fast, say which and why
        print(f"dogsearch: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dogsearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP services")
    serve.add_argument("service", nargs="?", default="all", choices=["all", "gateway", "embedder", "search"],
                       help="'all' (default): every service in one process; else one service in this process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: gateway/all 8000, embedder 8001, search 8002")
    serve.add_argument("--data-dir", type=Path, help="all: holds vectors/ and photos/; search: the vectors; "
                                                     "gateway: the photos")
    serve.add_argument("--embedder-url", help="gateway: the embedder's base URL")
    serve.add_argument("--search-url", help="gateway: the search service's base URL")
    serve.add_argument("--model", help="embedder model name (default: efficientnet_lite0)")
    serve.add_argument("--device", help="embedder device: cpu, cuda, cuda:N")
    serve.add_argument("--log-format", choices=["json", "text"], default="json")
    serve.set_defaults(func=_serve)

    index = sub.add_parser("index", help="add the photos of a folder to the gallery")
    index.add_argument("dir", type=Path)
    index.add_argument("--labels", choices=["folders", "csv"], default="folders",
                       help="folders: DIR/<breed>/<photo>; csv: a CSV with a 'path' column and field columns")
    index.add_argument("--csv", type=Path, help="the CSV for --labels csv (default DIR/labels.csv)")
    index.add_argument("--concurrency", type=int, default=4)
    _add_target(index)
    index.set_defaults(func=_index)

    search = sub.add_parser("search", help="find the dogs most like a photo")
    search.add_argument("image", type=Path)
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--breed", help="only dogs of this breed")
    search.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    _add_target(search)
    search.set_defaults(func=_search)

    evaluate = sub.add_parser("eval", help="measure retrieval quality")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    service = kinds.add_parser(
        "service", help="top-1 breed accuracy through the HTTP API next to the bare model's, on one split")
    service.add_argument("dir", type=Path, help="DIR/<breed>/<photo>")
    service.add_argument("--gallery-per-breed", type=int, default=30,
                         help="the first N photos of each breed are indexed, the rest are queries")
    service.add_argument("--json", action="store_true")
    service.set_defaults(func=_eval_service)
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running gateway (e.g. http://127.0.0.1:8000); default: in this process")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="in-process: the data directory (default .data)")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    configure_logging(fmt=args.log_format)
    app = _build_app(args)
    uvicorn.run(app, host=args.host, port=args.port or DEFAULT_PORTS[args.service], log_config=None,
                access_log=False, timeout_graceful_shutdown=10)
    return 0


def _build_app(args: argparse.Namespace):
    from services.embedder.settings import EmbedderSettings

    embedder_overrides = {k: v for k, v in (("model", args.model), ("device", args.device)) if v}
    if args.service == "all":
        from dogsearch.allinone import create_all_in_one

        return create_all_in_one(args.data_dir or Path(".data"),
                                 embedder_settings=EmbedderSettings(**embedder_overrides))
    if args.service == "embedder":
        from services.embedder.app import create_app

        return create_app(EmbedderSettings(**embedder_overrides))
    if args.service == "search":
        from services.search.app import create_app
        from services.search.settings import SearchSettings

        return create_app(SearchSettings(**({"data_dir": args.data_dir} if args.data_dir else {})))
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    overrides = {k: v for k, v in (("embedder_url", args.embedder_url), ("search_url", args.search_url),
                                   ("data_dir", args.data_dir)) if v}
    return create_app(GatewaySettings(**overrides))


@asynccontextmanager
async def _gateway(args: argparse.Namespace):
    """A client of a running gateway (--url), or of an all-in-one app started in this process."""
    from services.gateway.client import GatewayClient

    if args.url:
        client = GatewayClient(args.url, timeout=120)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from dogsearch.allinone import create_all_in_one

    app = create_all_in_one(args.data_dir)
    async with app.router.lifespan_context(app):
        client = GatewayClient("http://dogsearch", app=app, timeout=600)
        try:
            yield client
        finally:
            await client.aclose()


def _index(args: argparse.Namespace) -> int:
    from dogsearch.ingest import index_items, items_from_csv, items_from_folders

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch index: {args.dir} is not a folder", file=sys.stderr)
        return 2
    items = (items_from_csv(args.dir, args.csv or args.dir / "labels.csv") if args.labels == "csv"
             else items_from_folders(args.dir))
    if not items:
        print(f"dogsearch index: no photos under {args.dir}", file=sys.stderr)
        return 2

    async def run():
        async with _gateway(args) as client:
            return await index_items(client, items, concurrency=args.concurrency)

    report = asyncio.run(run())
    print(f"added {report.added}, already stored {report.already_stored}, failed {len(report.failed)}"
          + (f"; breeds: {dict(sorted(report.breeds.items()))}" if report.breeds else ""))
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return 1 if report.failed and not (report.added or report.already_stored) else 0


def _search(args: argparse.Namespace) -> int:
    from common.http import UpstreamError

    configure_logging("WARNING")
    data = args.image.read_bytes()

    async def run():
        async with _gateway(args) as client:
            return await client.search(data, k=args.k, filter={"breed": args.breed} if args.breed else None)

    try:
        answer = asyncio.run(run())
    except UpstreamError as exc:
        print(f"dogsearch search: {exc.status_code}: {exc.detail}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'rank':>4}  {'score':>6}  {'breed':<24} {'name':<16} id")
    for rank, hit in enumerate(answer["results"], 1):
        payload = hit["payload"]
        print(f"{rank:>4}  {hit['score']:6.3f}  {str(payload.get('breed', '-')):<24} "
              f"{str(payload.get('name', '-')):<16} {hit['id']}")
    print(f"({answer['took_ms']:.0f} ms)")
    return 0


def _eval_service(args: argparse.Namespace) -> int:
    import tempfile

    from dogsearch.allinone import create_all_in_one
    from dogsearch.ingest import items_from_folders
    from dogsearch.quality import compare, split_per_breed
    from services.embedder.model import create_model
    from services.embedder.settings import EmbedderSettings
    from services.gateway.client import GatewayClient

    configure_logging("WARNING")
    gallery, queries = split_per_breed(items_from_folders(args.dir), args.gallery_per_breed)
    settings = EmbedderSettings()

    async def run():
        with tempfile.TemporaryDirectory(prefix="dogsearch-eval-") as data_dir:
            app = create_all_in_one(Path(data_dir), embedder_settings=settings)
            async with app.router.lifespan_context(app):
                client = GatewayClient("http://dogsearch", app=app, timeout=600)
                bare = create_model(settings.model, device=settings.device, precision=settings.precision,
                                    weights_path=settings.weights_path)
                report, _, _ = await compare(client, bare, gallery, queries)
                await client.aclose()
                return report.as_dict() | {"model": bare.model_id}

    result = asyncio.run(run())
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>12}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
