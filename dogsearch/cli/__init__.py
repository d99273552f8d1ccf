"""The `dogsearch` command: serve the services (all in one process, or one each), index photos, search."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from pydantic import ValidationError

from dogsearch.core.errors import DogsearchError
from dogsearch.core.logs import configure_logging

DEFAULT_PORTS = {"all": 8000, "gateway": 8000, "embedder": 8001, "search": 8002, "pose": 8003}


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
    serve.add_argument("service", nargs="?", default="all", choices=["all", "gateway", "embedder", "search", "pose"],
                       help="'all' (default): every service in one process; else one service in this process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, help="default: gateway/all 8000, embedder 8001, search 8002, pose 8003")
    serve.add_argument("--data-dir", type=Path, help="all: holds vectors/ and photos/; search: the vectors; "
                                                     "gateway: the photos")
    serve.add_argument("--embedder-url", help="gateway: the embedder's base URL")
    serve.add_argument("--search-url", help="gateway: the search service's base URL")
    serve.add_argument("--pose-url", help="gateway: the pose service's base URL")
    serve.add_argument("--model", help="embedder model name (default: vit_small_dinov2-lora-dogs-v1)")
    serve.add_argument("--device", help="embedder device: cpu, cuda, cuda:N")
    serve.add_argument("--log-format", choices=["json", "text"], default="json")
    serve.set_defaults(func=_serve)

    index = sub.add_parser("index", help="add the photos of a folder to the gallery")
    index.add_argument("dir", type=Path)
    index.add_argument("--labels", choices=["folders", "csv"], default="folders",
                       help="folders: DIR/<breed>/<photo>; csv: a CSV with a 'path' column and field columns")
    index.add_argument("--csv", type=Path, help="the CSV for --labels csv (default DIR/labels.csv); its 'path' "
                                                "column is relative to the CSV's folder")
    index.add_argument("--payload", help="JSON object: fields given to every photo")
    index.add_argument("--server-path", action="store_true",
                       help="with --url: the gateway reads DIR itself (under its allowed roots) instead of an upload")
    index.add_argument("--local", action="store_true",
                       help="run the job in this process even when DOGSEARCH_BROKER_URL is set")
    _add_target(index)
    index.set_defaults(func=_index)

    worker = sub.add_parser("worker", help="a Celery worker for bulk jobs (needs DOGSEARCH_BROKER_URL); "
                                           "start more of them to scale out")
    worker.add_argument("--concurrency", type=int, default=2, help="batches in flight (default 2)")
    worker.add_argument("--pool", choices=["threads", "prefork", "solo"], default="threads")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=_worker)

    search = sub.add_parser("search", help="find the dogs most like a photo")
    search.add_argument("image", type=Path)
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--breed", help="only dogs of this breed")
    search.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    _add_target(search)
    search.set_defaults(func=_search)

    bench = sub.add_parser("bench", help="measure throughput and latency on this machine (JSON)")
    bench.add_argument("--only", help="comma-separated: embed, vector, search, ... (default: all)")
    bench.add_argument("--quick", action="store_true", help="small sizes: checks that it works, in a minute or two")
    bench.add_argument("--json", action="store_true", help="one line of JSON")
    bench.add_argument("--out", type=Path, help="also write the JSON to this file")
    bench.set_defaults(func=_bench)

    evaluate = sub.add_parser("eval", help="measure retrieval quality")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    service = kinds.add_parser(
        "service", help="top-1 breed accuracy through the HTTP API next to the bare model's, on one split")
    service.add_argument("dir", type=Path, help="DIR/<breed>/<photo>")
    service.add_argument("--gallery-per-breed", type=int, default=30,
                         help="the first N photos of each breed are indexed, the rest are queries")
    service.add_argument("--json", action="store_true")
    service.set_defaults(func=_eval_service)
    pose_eval = kinds.add_parser("pose", help="pose keypoint accuracy (PCK@0.1) and speed on labelled photos")
    pose_eval.add_argument("dir", type=Path, help="DIR/images/<id>.jpg and DIR/labels/<id>.txt (YOLO-pose, "
                                                  "StanfordExtra's 24 joints)")
    pose_eval.add_argument("--boxes", choices=["detected", "labelled"], default="detected",
                           help="detected (default): the whole service path; labelled: pose from the label boxes")
    pose_eval.add_argument("--limit", type=int, help="only the first N photos")
    pose_eval.add_argument("--json", action="store_true")
    pose_eval.set_defaults(func=_eval_pose)
    for kind, what in (("breed", "DIR/<breed>/<photo>"), ("identity", "DIR/<dog>/<photo>; dogs with >= 2 photos")):
        retrieval = kinds.add_parser(kind, help=f"leave-one-out {kind} retrieval of the bare embedder: "
                                                 "recall@1, recall@5, mAP, images/s")
        retrieval.add_argument("dir", type=Path, help=what)
        retrieval.add_argument("--model", help="embedder model name (default: the embedder setting)")
        retrieval.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting, "
                                                "else the GPU when there is one)")
        retrieval.add_argument("--split", choices=["all", "train", "val", "heldout"], default="all",
                               help="only photos of this split (dogsearch/eval/splits.py); identity evals use "
                                    "'heldout' for the DogFaceNet dogs kept out of training")
        retrieval.add_argument("--batch-size", type=int, default=32)
        retrieval.add_argument("--json", action="store_true", help="print one JSON object")
        retrieval.set_defaults(func=_eval_retrieval)

    train = sub.add_parser("train", help="train models (see training/)")
    train_kinds = train.add_subparsers(dest="what", required=True)
    embedder = train_kinds.add_parser("embedder", help="train a projection head on a frozen backbone")
    embedder.set_defaults(func=_train_embedder)
    from dogsearch.training.embedder.cli import add_arguments as _add_train_arguments

    _add_train_arguments(embedder)
    vit = train_kinds.add_parser("vit", help="fine-tune the ViT end to end through LoRA adapters (a GPU's work)")
    vit.set_defaults(func=_train_vit)
    from dogsearch.training.embedder.cli import add_finetune_arguments

    add_finetune_arguments(vit)
    pose_train = train_kinds.add_parser("pose", help="train the default pose model (models/pose-lite0-fpn)")
    pose_train.set_defaults(func=_train_pose)
    from dogsearch.training.pose.cli import add_arguments as _add_pose_train_arguments

    _add_pose_train_arguments(pose_train)

    reindex = sub.add_parser("reindex", help="re-embed the stored gallery with another model, then swap it in")
    reindex.add_argument("--data-dir", type=Path, default=Path(".data"),
                         help="the all-in-one data directory: its photos/, and its vectors/ unless "
                              "DOGSEARCH_SEARCH_QDRANT_URL names a Qdrant server to reindex")
    reindex.add_argument("--model", help="the new embedder model (default: the embedder setting)")
    reindex.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting)")
    reindex.add_argument("--batch-size", type=int, default=32)
    reindex.set_defaults(func=_reindex)
    return parser


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running gateway (e.g. http://127.0.0.1:8000); default: in this process")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="in-process: the data directory (default .data)")


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dogsearch.core.memory import frozen_once_started

    configure_logging(fmt=args.log_format)
    app = frozen_once_started(_build_app(args))
    uvicorn.run(app, host=args.host, port=args.port or DEFAULT_PORTS[args.service], log_config=None,
                access_log=False, timeout_graceful_shutdown=10)
    return 0


def _build_app(args: argparse.Namespace):
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
    from dogsearch.services.gateway.app import create_app
    from dogsearch.services.gateway.settings import GatewaySettings

    overrides = {k: v for k, v in (("embedder_url", args.embedder_url), ("search_url", args.search_url),
                                   ("pose_url", args.pose_url),
                                   ("data_dir", args.data_dir)) if v}
    from dogsearch.jobs.settings import JobsSettings

    # Embedded job state and unpacked uploads go under the gateway's data directory (ids never clash: the
    # photo store's sub-folders are two hex digits).
    jobs = JobsSettings(**({"data_dir": args.data_dir / "jobs"} if args.data_dir else {}))
    return create_app(GatewaySettings(**overrides), jobs_settings=jobs)


@asynccontextmanager
async def _gateway(args: argparse.Namespace):
    """A client of a running gateway (--url), or of an all-in-one app started in this process."""
    from dogsearch.services.gateway.client import GatewayClient

    if args.url:
        client = GatewayClient(args.url, timeout=120)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from dogsearch.services.allinone import create_all_in_one

    app = create_all_in_one(args.data_dir)
    async with app.router.lifespan_context(app):
        client = GatewayClient("http://dogsearch", app=app, timeout=600)
        try:
            yield client
        finally:
            await client.aclose()


def _index(args: argparse.Namespace) -> int:
    """A bulk job: on a running gateway (--url), on the Celery workers (DOGSEARCH_BROKER_URL), or in this process."""
    import tempfile

    from dogsearch.cli.ingest import follow_job, job_summary, zip_folder
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.jobs.sources import JobInputError

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch index: {args.dir} is not a folder", file=sys.stderr)
        return 2
    root = args.dir.resolve()
    labels = args.labels if args.labels == "csv" else None
    target = str((args.csv or root / "labels.csv").resolve()) if args.csv and labels else str(root)
    payload = json.loads(args.payload) if args.payload else None
    readable = [root] + ([Path(target).parent] if labels and args.csv else [])  # what this job may read
    settings = JobsSettings()

    async def via_gateway():
        from dogsearch.services.gateway.jobs_client import JobsClient

        client = JobsClient(args.url, timeout=600)
        try:
            if args.server_path:
                created = await client.index_path(target, labels, payload)
            else:
                if args.csv and args.csv.resolve() != root / "labels.csv":
                    raise JobInputError("an upload takes DIR/labels.csv; use --server-path for another CSV")
                with tempfile.TemporaryDirectory(prefix="dogsearch-upload-") as tmp:
                    archive = Path(tmp) / f"{root.name}.zip"
                    await asyncio.to_thread(zip_folder, root, archive)
                    created = await client.index_archive(archive, labels, payload)
            return await follow_job(lambda: client.get(created["id"]))
        finally:
            await client.aclose()

    async def on_workers():
        from dogsearch.jobs.service import Jobs

        jobs = Jobs(settings)
        async with jobs.running():
            created = await jobs.submit_path(target, labels, payload, roots=readable)
            return await follow_job(lambda: jobs.get(created["id"]))

    async def in_process():
        from dogsearch.core.memory import frozen_once_started
        from dogsearch.services.allinone import create_all_in_one
        from dogsearch.services.gateway.jobs_client import JobsClient

        app = frozen_once_started(create_all_in_one(args.data_dir, jobs_options={
            "broker_url": None, "allowed_roots": [str(r) for r in readable]}))
        async with app.router.lifespan_context(app):
            client = JobsClient("http://dogsearch", app=app, timeout=600)
            created = await client.index_path(target, labels, payload)
            job = await follow_job(lambda: client.get(created["id"]))
            await client.aclose()
            return job

    run = via_gateway if args.url else on_workers if settings.broker_url and not args.local else in_process
    try:
        job = asyncio.run(run())
    except DogsearchError as exc:
        print(f"dogsearch index: {exc.reason}", file=sys.stderr)
        return 1
    print(job_summary(job))
    for error in job["errors"]:
        print(f"  failed: {error['file']}: {error['reason']}", file=sys.stderr)
    if job["state"] != "done":
        print(f"dogsearch index: job {job['id']} {job['state']}" + (f": {job['error']}" if job.get("error") else ""),
              file=sys.stderr)
        return 1
    return 1 if job["failed"] and not (job["indexed"] or job["duplicates"]) else 0


def _worker(args: argparse.Namespace) -> int:
    from dogsearch.services.worker import run_worker

    configure_logging(args.loglevel)
    run_worker(concurrency=args.concurrency, pool=args.pool, loglevel=args.loglevel)
    return 0


def _search(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    data = args.image.read_bytes()

    async def run():
        async with _gateway(args) as client:
            return await client.search(data, k=args.k, filter={"breed": args.breed} if args.breed else None)

    try:
        answer = asyncio.run(run())
    except DogsearchError as exc:
        print(f"dogsearch search: {exc.reason}", file=sys.stderr)
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

    from dogsearch.cli.ingest import items_from_folders
    from dogsearch.eval.service import compare, split_per_breed
    from dogsearch.models.embedding import model_from_settings
    from dogsearch.services.allinone import create_all_in_one
    from dogsearch.services.embedder.settings import EmbedderSettings
    from dogsearch.services.gateway.client import GatewayClient

    configure_logging("WARNING")
    gallery, queries = split_per_breed(items_from_folders(args.dir), args.gallery_per_breed)
    settings = EmbedderSettings()

    async def run():
        with tempfile.TemporaryDirectory(prefix="dogsearch-eval-") as data_dir:
            app = create_all_in_one(Path(data_dir), embedder_settings=settings)
            async with app.router.lifespan_context(app):
                client = GatewayClient("http://dogsearch", app=app, timeout=600)
                bare = model_from_settings(settings)
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


def _eval_retrieval(args: argparse.Namespace) -> int:
    from dogsearch.eval.retrieval import evaluate_dir, load_model

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch eval {args.kind}: {args.dir} is not a folder", file=sys.stderr)
        return 2
    model = load_model(args.model, args.device)
    try:
        result = evaluate_dir(model, args.dir, args.kind, split=args.split, batch_size=args.batch_size)
    except ValueError as exc:
        print(f"dogsearch eval {args.kind}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>10}: {value:.4f}" if isinstance(value, float) else f"{key:>10}: {value}")
    return 0


def _train_embedder(args: argparse.Namespace) -> int:
    from dogsearch.training.embedder.cli import run

    configure_logging("WARNING")
    return run(args)


def _train_vit(args: argparse.Namespace) -> int:
    from dogsearch.training.embedder.cli import run_finetune

    configure_logging("WARNING")
    return run_finetune(args)


def _eval_pose(args: argparse.Namespace) -> int:
    from dogsearch.eval.pose import evaluate_dir

    configure_logging("WARNING")
    result = evaluate_dir(args.dir, boxes=args.boxes, limit=args.limit)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key in ("pck@0.1", "n_images", "n_dogs", "n_keypoints", "model", "detector", "boxes", "ms_per_image"):
        value = result[key]
        print(f"{key:>13}: {value:.4f}" if isinstance(value, float) else f"{key:>13}: {value}")
    print("per joint (PCK@0.1, labelled visible count):")
    for name, item in result["per_joint"].items():
        pck = "   n/a" if item["pck"] is None else f"{item['pck']:.3f}"
        print(f"  {name:>16}: {pck}  (n={item['n']})")
    return 0


def _train_pose(args: argparse.Namespace) -> int:
    from dogsearch.training.pose.cli import run

    configure_logging("WARNING")
    return run(args)


def _reindex(args: argparse.Namespace) -> int:
    from dogsearch.gallery.reindex import reindex_cli

    configure_logging("WARNING")
    return reindex_cli(args)


def _bench(args: argparse.Namespace) -> int:
    from dogsearch.bench.run import main as bench_main

    configure_logging("WARNING")
    return bench_main(args.only.split(",") if args.only else None, args.quick, args.json, args.out)

