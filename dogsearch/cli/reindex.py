"""`dogsearch reindex`: re-embed the stored gallery with another model (with the embedder's detector on: each dog
of each stored photo, detected again), then swap it in: the vectors of a Qdrant
server when DOGSEARCH_SEARCH_QDRANT_URL is set, else of the embedded engine in --data-dir's vectors/; the photos in
--data-dir's photos/ either way. Entries whose photo is missing are skipped and named; their fields are kept in
--data-dir's reindex-skipped-<time>.jsonl, since the old collection that held them is dropped."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def add_parser(sub) -> None:
    reindex = sub.add_parser("reindex", help="re-embed the stored gallery with another model, then swap it in")
    reindex.add_argument("--data-dir", type=Path, default=Path(".data"),
                         help="the all-in-one data directory: its photos/, and its vectors/ unless "
                              "DOGSEARCH_SEARCH_QDRANT_URL names a Qdrant server to reindex")
    reindex.add_argument("--model", help="the new embedder model (default: the embedder setting)")
    reindex.add_argument("--device", help="cpu, cuda, cuda:N (default: the embedder setting)")
    reindex.add_argument("--detector", help="the dog detector whose crops are embedded, each stored photo detected "
                                            "again; 'none': whole photos (default: the embedder setting)")
    reindex.add_argument("--batch-size", type=int, default=32)
    reindex.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.logs import configure_logging
    from dogsearch.eval.retrieval import load_model
    from dogsearch.gallery.photos import PhotoStore
    from dogsearch.gallery.reindex import ReindexError, reindex
    from dogsearch.search.contract import StoreError
    from dogsearch.search.engine import open_engine
    from dogsearch.services.embedder.dogs import DogCropModel
    from dogsearch.services.embedder.settings import EmbedderSettings
    from dogsearch.services.layout import DataLayout
    from dogsearch.services.search.settings import SearchSettings

    configure_logging("WARNING")
    layout, settings = DataLayout(args.data_dir), SearchSettings()
    if settings.qdrant_url is None and not (layout.vectors / settings.collection).is_dir():
        # said before opening anything, which would leave empty photos/ and vectors/ folders in a wrong --data-dir
        print(f"dogsearch reindex: no collection {settings.collection!r} in {layout.vectors}: nothing to reindex "
              "(--data-dir is the data directory the server ran on: `make demo`'s is .data/demo)", file=sys.stderr)
        return 1
    model = load_model(args.model, args.device)
    embedder = EmbedderSettings(**({"detector": args.detector} if args.detector else {}))
    if embedder.detects:  # what the embedder service stores: each dog's crop
        model = DogCropModel(model, embedder.build_detector(alone=True), embedder.build_classifier(),
                             decode_side=embedder.dog_decode_side)
    engine = open_engine(**settings.engine_options() | {"data_dir": layout.vectors})
    try:
        report = reindex(engine, settings.collection, PhotoStore(layout.photos), model, batch_size=args.batch_size)
    except (ReindexError, StoreError) as exc:
        print(f"dogsearch reindex: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.close()
    if not report.swapped:
        print(f"{report.points} photos are already embedded with {report.new_model}: nothing to do")
    else:
        print(f"re-embedded {report.points} photos: {report.old_model} -> {report.new_model} (dim {report.dim}), "
              f"skipped {len(report.skipped)}" + (f", {report.added} more dogs found in them" if report.added else ""))
    if report.skipped:
        kept = save_skipped(args.data_dir, report.skipped)
        for entry in report.skipped:
            print(f"  skipped: {entry.id}: {entry.reason}", file=sys.stderr)
        print(f"dogsearch reindex: the skipped entries' fields are in {kept}; upload their photos again to bring "
              "them back", file=sys.stderr)
    return 0


def save_skipped(data_dir: Path, skipped) -> Path:
    path = data_dir / f"reindex-skipped-{time.strftime('%Y%m%dT%H%M%S')}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"id": s.id, "reason": s.reason, "payload": s.payload}) + "\n"
                            for s in skipped))
    return path
