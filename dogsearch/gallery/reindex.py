"""`dogsearch reindex`: re-embed a stored gallery with another model, then swap it in, on either engine.

Every point's photo is read back from the PhotoStore (its payload's ``format`` names the file), decoded and
embedded exactly as the embedder service does, and written with the same id and payload (``model`` updated) into a
staging collection beside the old one. A point whose photo is missing (or no longer decodes) cannot be embedded: it
is skipped and named in the report (`dogsearch check` lists such points beforehand; a re-upload of the photo brings
the dog back). Only when every other point is there is the staging collection swapped in for the
old (Engine.swap: on the embedded engine an exchange of the two folders, atomic where the kernel has renameat2; on a
Qdrant server an alias), and the old one dropped; the two vector spaces never mix.

Stop writes meanwhile: points added to the old collection during the copy are not in the new one. The embedded
engine enforces it (the store's folder lock refuses a running server, or another reindex); on a Qdrant server,
searches go on during the copy, and the services must be restarted afterwards with the new embedder model.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from dogsearch.core.images import ImageRejected
from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.gallery.photos import PhotoStore
from dogsearch.search.contract import Engine, Point, StoreError, VectorStore

STAGING_INFIX = "__reindex-"


class ReindexError(RuntimeError):
    pass


@dataclass(frozen=True)
class Skipped:
    """A point left out of the new collection: its photo could not be read."""

    id: str
    reason: str
    payload: dict[str, Any]  # its fields: what is left of the dog once the old collection is dropped


@dataclass
class ReindexReport:
    points: int  # in the new collection
    old_model: str | None
    new_model: str
    dim: int
    swapped: bool
    skipped: list[Skipped] = field(default_factory=list)


def staging_name(collection: str, model) -> str:
    """Where the new vectors are written before the swap: one name per collection and model, so that a run that
    died is cleaned up by the next for the same model, and never the collection a Qdrant alias serves now (that one
    holds another model's vectors, or there is nothing to do)."""
    digest = hashlib.sha256(f"{model.model_id}:{model.dim}".encode()).hexdigest()[:12]
    return f"{collection}{STAGING_INFIX}{digest}"


def reindex(engine: Engine, collection: str, photos: PhotoStore, model, *, batch_size: int = 32,
            progress: bool = True, optimize_at: int = 2000) -> ReindexReport:
    """Re-embed every point of ``collection`` with ``model`` and swap the result in."""
    old = engine.open(collection)  # the embedded engine's lock: a running server, or another reindex, fails here
    try:
        info = old.collection_info
        if info is None:
            raise ReindexError(f"no collection {collection!r} in {engine!r}: nothing to reindex")
        if info.model == model.model_id and info.dim == model.dim:
            return ReindexReport(old.count(), info.model, model.model_id, model.dim, swapped=False)
        total = old.count()
        staging = staging_name(collection, model)
        engine.drop(staging)  # left by a run that died: never swapped in
        new = engine.open(staging)
        try:
            new.ensure_collection(model.dim, model.model_id, INDEXED_FIELDS)
            done, skipped = _copy(old, new, photos, model, total, batch_size, progress)
            if total and len(skipped) == total:  # the wrong photo folder, most likely: never swap in nothing
                raise ReindexError(f"none of the {total} points' photos could be read in {photos.root}; "
                                   "the old collection stays")
            if new.count() != total - len(skipped) or done != total:
                raise ReindexError(f"copied {new.count()} of {total} points ({len(skipped)} skipped); "
                                   "the old collection stays")
            if new.builds_own_index or total >= optimize_at:
                new.optimize()  # a server: wait for its index, so that the swap puts in an indexed collection
        except BaseException:
            new.close()
            _drop_quietly(engine, staging)
            raise
        new.close()
    finally:
        old.close()  # before the swap: the embedded engine flushes into the folder it is about to exchange
    left = engine.swap(collection, staging)
    if left is not None:
        engine.drop(left)  # the old collection
    return ReindexReport(total - len(skipped), info.model, model.model_id, model.dim, swapped=True, skipped=skipped)


def _drop_quietly(engine: Engine, collection: str) -> None:
    """Drop what a failed run wrote; a failure to do so (the server went away, say) must not hide the first."""
    try:
        engine.drop(collection)
    except StoreError:
        pass  # the next run for this model drops it first


def _copy(old: VectorStore, new: VectorStore, photos: PhotoStore, model, total: int, batch_size: int,
          progress: bool) -> tuple[int, list[Skipped]]:
    done, skipped = 0, []
    with tqdm(total=total, desc=f"reindex -> {model.model_id}", unit="photo", disable=not progress) as bar:
        offset = None
        while True:
            page, offset = old.scroll(batch_size, offset=offset)
            if page:
                points, left_out = _embed_page(page, photos, model)
                if points:
                    new.upsert(points)
                skipped += left_out
                done += len(page)
                bar.update(len(page))
            if offset is None:
                return done, skipped


def _embed_page(page: list[Point], photos: PhotoStore, model) -> tuple[list[Point], list[Skipped]]:
    import torch

    tensors, kept, skipped = [], [], []
    for point in page:
        fmt, photo = point.payload.get("format"), point.payload.get("photo_id", point.id)  # the entry's photo
        try:
            if not fmt:
                raise FileNotFoundError(photo)
            image = photos.decode_original(photo, fmt, min_side=model.decode_side)  # as the embedder decodes
        except FileNotFoundError:
            skipped.append(Skipped(point.id, "photo missing", dict(point.payload)))
            continue
        except ImageRejected as exc:
            skipped.append(Skipped(point.id, f"photo damaged: {exc.reason}", dict(point.payload)))
            continue
        tensors.append(model.preprocess(image))
        kept.append(point)
    if not kept:
        return [], skipped
    vectors = model.embed(torch.stack(tensors))
    return [Point(id=p.id, vector=v.tolist(), payload=dict(p.payload) | {"model": model.model_id})
            for p, v in zip(kept, vectors, strict=True)], skipped

