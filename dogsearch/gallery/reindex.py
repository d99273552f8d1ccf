"""`dogsearch reindex`: re-embed a stored gallery with another model, then swap it in.

Offline, on an all-in-one data directory (``vectors/<collection>`` + ``photos/``; stop the server first:
the store's directory lock refuses a second opener). Every point's photo is read back from the
PhotoStore (its payload's ``format`` names the file), decoded and embedded exactly as the embedder
service does, and written with the same id and payload (``model`` updated) into a new collection
beside the old one. Only when every point is there is the new directory swapped in for the old (an
atomic exchange where the kernel has renameat2, else two renames); the two vector spaces never mix.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.gallery.photos import PhotoStore
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore

STAGING_SUFFIX = "__reindex"
OLD_SUFFIX = "__old"
_RENAME_EXCHANGE = 2


class ReindexError(RuntimeError):
    pass


@dataclass
class ReindexReport:
    points: int
    old_model: str | None
    new_model: str
    dim: int
    swapped: bool


def reindex(data_dir: Path, model, *, collection: str = "dogs", batch_size: int = 32, progress: bool = True,
            optimize_at: int = 2000) -> ReindexReport:
    """Re-embed every point of ``data_dir``'s collection with ``model`` and swap the result in."""
    vectors = Path(data_dir) / "vectors"
    photos = PhotoStore(Path(data_dir) / "photos")
    if not (vectors / collection / "meta.json").is_file():
        raise ReindexError(f"no collection {collection!r} under {vectors}: nothing to reindex")
    staging_name = collection + STAGING_SUFFIX
    shutil.rmtree(vectors / staging_name, ignore_errors=True)  # left by a run that died: never swapped in

    old = EdgeStore(vectors, collection)  # holds the lock: a running server, or another reindex, fails here
    try:
        info = old.collection_info
        old_model = info.model if info else None
        if info is not None and info.model == model.model_id and info.dim == model.dim:
            return ReindexReport(old.count(), old_model, model.model_id, model.dim, swapped=False)
        total = old.count()
        new = EdgeStore(vectors, staging_name)
        try:
            new.ensure_collection(model.dim, model.model_id, INDEXED_FIELDS)
            done = 0
            with tqdm(total=total, desc=f"reindex -> {model.model_id}", unit="photo", disable=not progress) as bar:
                offset = None
                while True:
                    page, offset = old.scroll(batch_size, offset=offset)
                    if page:
                        new.upsert(_embed_page(page, photos, model))
                        done += len(page)
                        bar.update(len(page))
                    if offset is None:
                        break
            if new.count() != total or done != total:
                raise ReindexError(f"copied {new.count()} of {total} points; the old collection stays")
            if total >= optimize_at:
                new.optimize()
        finally:
            new.close()
    finally:
        old.close()  # before the swap: closing flushes into the store's (then swapped) directory
    _swap(vectors / collection, vectors / staging_name)
    shutil.rmtree(vectors / staging_name, ignore_errors=True)  # now the old collection
    return ReindexReport(total, old_model, model.model_id, model.dim, swapped=True)


def _embed_page(page: list[Point], photos: PhotoStore, model) -> list[Point]:
    import torch

    tensors = []
    for point in page:
        fmt = point.payload.get("format")
        path = photos.original(point.id, fmt) if fmt else None
        if path is None or not path.is_file():
            raise ReindexError(f"the photo of point {point.id} (format {fmt!r}) is missing: {path}; "
                               "the old collection stays")
        image = photos.decode_original(point.id, fmt, min_side=model.decode_side)  # as the embedder decodes
        tensors.append(model.preprocess(image))
    vectors = model.embed(torch.stack(tensors))
    return [Point(id=p.id, vector=v.tolist(), payload=dict(p.payload) | {"model": model.model_id})
            for p, v in zip(page, vectors, strict=True)]


def _swap(current: Path, staging: Path) -> None:
    """Afterwards ``current`` holds the new collection and ``staging`` the old one."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, bytes(staging), at_fdcwd, bytes(current), _RENAME_EXCHANGE) == 0:
            return
    # no atomic exchange here (old kernel/libc, or a file system without it): two renames
    aside = current.with_name(current.name + OLD_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(current, aside)
    os.replace(staging, current)
    os.replace(aside, staging)


def reindex_cli(args: argparse.Namespace) -> int:
    from dogsearch.eval.retrieval import load_model
    from dogsearch.search.contract import StoreError
    from dogsearch.services.search.settings import SearchSettings

    model = load_model(args.model, args.device)
    try:
        report = reindex(args.data_dir, model, collection=SearchSettings().collection, batch_size=args.batch_size)
    except (ReindexError, StoreError) as exc:
        print(f"dogsearch reindex: {exc}", file=sys.stderr)
        return 1
    if not report.swapped:
        print(f"{report.points} photos are already embedded with {report.new_model}: nothing to do")
    else:
        print(f"re-embedded {report.points} photos: {report.old_model} -> {report.new_model} (dim {report.dim})")
    return 0
