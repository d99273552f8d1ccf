"""`dogsearch reindex`: re-embed a stored gallery with another model, then swap it in, on either engine.

Every point's photo is read back from the PhotoStore (its payload's ``format`` names the file), decoded and
embedded exactly as the embedder service does, and written with the same id and payload (``model`` updated) into a
staging collection beside the old one. A point whose photo is missing (or no longer decodes) cannot be embedded: it
is skipped and named in the report (`dogsearch check` lists such points beforehand; a re-upload of the photo brings
the dog back). Only when every other point is there is the staging collection swapped in for the
old (Engine.swap: on the embedded engine an exchange of the two folders, atomic where the kernel has renameat2; on a
Qdrant server an alias), and the old one dropped; the two vector spaces never mix.

With a model that finds dogs (`DogCropper`: the embedder's detector on, vectors of dog crops), each stored photo is
detected again: an entry is re-embedded from the crop of its own dog (the photo's dog of its index, largest first;
the whole photo when none is found, so no stored dog is lost) and gets that dog's `box`; a photo's first entry
also brings its other dogs in as new dogs of their own (ids from the photo and the index, so a run again makes the
same entries, never more), with the photo's facts and a `breed_guess` but none of the first dog's user fields. A dog
its user marked (`marked`) is re-embedded from its own box, and the detector is not asked.

Stop writes meanwhile: points added to the old collection during the copy are not in the new one. The embedded
engine enforces it (the store's folder lock refuses a running server, or another reindex); on a Qdrant server,
searches go on during the copy, and the services must be restarted afterwards with the new embedder model.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from dogsearch.core.boxes import Box, crop
from dogsearch.core.images import ImageRejected
from dogsearch.core.progress import progress_bar
from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import MAX_PHOTO_DOGS, dog_created_at, entry_id
from dogsearch.search.contract import Engine, Point, StoreError, VectorStore

# The facts of a photo a new dog of it gets from the photo's first entry (not the first dog's user fields).
PHOTO_FIELDS = ("photo_id", "sha256", "format", "width", "height", "photo_dogs", "bytes", "created_at", "owner",
                "phash", "near_duplicate_of")


class DogCropper(Protocol):
    """A model that embeds the dogs of a photo (services/embedder/dogs.py's DogCropModel)."""

    model_id: str
    dim: int
    decode_side: int

    def preprocess(self, image: Image.Image) -> Any: ...

    def embed(self, batch: Any) -> Any: ...

    def dogs(self, image: Image.Image, width: int, height: int) -> list[tuple[Box | None, Image.Image, list[dict]]]:
        """Largest first, at least one: (box in the photo's pixels or None for the whole photo, crop, breed guesses)."""

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
    added: int = 0  # dogs found besides the stored ones (a photo's other dogs), each a new entry


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
            done, added, skipped = _copy(old, new, photos, model, total, batch_size, progress)
            if total and len(skipped) == total:  # the wrong photo folder, most likely: never swap in nothing
                raise ReindexError(f"none of the {total} points' photos could be read in {photos.root}; "
                                   "the old collection stays")
            if new.count() != total - len(skipped) + added or done != total:
                raise ReindexError(f"copied {new.count()} of {total} points ({len(skipped)} skipped, {added} dogs "
                                   "found besides); the old collection stays")
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
    return ReindexReport(total - len(skipped) + added, info.model, model.model_id, model.dim, swapped=True,
                         skipped=skipped, added=added)


def _drop_quietly(engine: Engine, collection: str) -> None:
    """Drop what a failed run wrote; a failure to do so (the server went away, say) must not hide the first."""
    try:
        engine.drop(collection)
    except StoreError:
        pass  # the next run for this model drops it first


def _copy(old: VectorStore, new: VectorStore, photos: PhotoStore, model, total: int, batch_size: int,
          progress: bool) -> tuple[int, int, list[Skipped]]:
    done, added, skipped = 0, 0, []
    with progress_bar(total, desc=f"reindex -> {model.model_id}", unit="photo", enabled=progress) as bar:
        offset = None
        while True:
            page, offset = old.scroll(batch_size, offset=offset)
            if page:
                points, found, left_out = _embed_page(page, photos, model, old)
                if points:
                    new.upsert(points)
                skipped += left_out
                done += len(page)
                added += found
                bar.update(len(page))
            if offset is None:
                return done, added, skipped


def _embed_page(page: list[Point], photos: PhotoStore, model,
                old: VectorStore) -> tuple[list[Point], int, list[Skipped]]:
    """The page's points re-embedded, and with a DogCropper the other dogs their photos show (new points); (points,
    how many of them are new, the points left out)."""
    import torch

    redetect = hasattr(model, "dogs")
    images, kept, extra, skipped = [], [], [], []
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
        if not redetect:
            images.append(image)
            kept.append((point.id, dict(point.payload)))
            continue
        (id, payload, crop_image), *others = _redetected(point, photo, image, model)
        images.append(crop_image)
        kept.append((id, payload))
        extra += others
    # A photo's other dogs, unless stored before: those are re-embedded from their own point (here or on another
    # page), not twice. Nor one whose id a stored dog has: the photo it was made from, removed from it by its user,
    # stays removed (a new point of that id would be the dog's second cover).
    wanted = {id for id, _, _ in extra} - {p.id for p in page}
    new_ids = wanted - ({p.id for p in old.retrieve(sorted(wanted))} if wanted else set())
    dogs = {"dog_id": sorted(new_ids), "cover": True}
    if new_ids and (covers := old.count(dogs)):
        new_ids -= {p.payload["dog_id"] for p in old.scroll(covers, None, dogs)[0]}
    for id, payload, crop_image in extra:
        if id in new_ids:
            images.append(crop_image)
            kept.append((id, payload))
    if not kept:
        return [], 0, skipped
    vectors = model.embed(torch.stack([model.preprocess(im) for im in images]))
    return [Point(id=id, vector=v.tolist(), payload=payload | {"model": model.model_id})
            for (id, payload), v in zip(kept, vectors, strict=True)], len(new_ids), skipped


def _redetected(point: Point, photo: str, image: Image.Image,
                cropper: DogCropper) -> list[tuple[str, dict[str, Any], Image.Image]]:
    """(id, payload, crop) of a stored entry detected again, and for a photo's first entry its photo's other dogs."""
    payload = dict(point.payload)
    width, height = payload.get("width") or image.width, payload.get("height") or image.height
    box = payload.get("box")

    def own() -> Image.Image:  # the crop of its stored box (or the photo)
        return image if box is None else crop(image, _scaled(box, image.width / width, image.height / height))

    if payload.get("marked") and box:  # where its user marked it: no detector second-guesses that
        return [(point.id, payload, own())]
    dogs = cropper.dogs(image, width, height)
    index = next((i for i in range(MAX_PHOTO_DOGS) if entry_id(photo, i) == point.id), 0)
    if index < len(dogs):
        box, crop_image, guess = dogs[index]
    else:  # fewer dogs found now than when it was stored: its own box (or the photo) as it was
        guess = payload.get("breed_guess", [])
        crop_image = own()
    # how many dogs the photo shows now (its first entry adds the others below): a bulk job run again then knows
    # whether all are stored
    payload["photo_dogs"] = max(len(dogs), index + 1)
    out = [(point.id, _placed(payload, box, guess), crop_image)]
    if index == 0:
        facts = {k: payload[k] for k in PHOTO_FIELDS if k in payload}
        for i, (box, crop_image, guess) in enumerate(dogs[1:], start=1):
            new = entry_id(photo, i)
            dog = {"photo_id": photo, "dog_id": new, "cover": True,
                   "dog_created_at": dog_created_at(new, facts.get("created_at", ""))}
            out.append((new, _placed(facts | dog, box, guess),
                        crop_image))
    return out


def _placed(payload: dict[str, Any], box: Box | None, guess: list[dict]) -> dict[str, Any]:
    out = {k: v for k, v in payload.items() if k != "box"}
    if box is not None:
        out["box"] = [float(v) for v in box]
    if guess and "breed" not in out:
        out["breed_guess"] = guess
    return out


def _scaled(box, sx: float, sy: float) -> Box:
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy

