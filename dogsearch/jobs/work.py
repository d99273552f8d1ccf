"""The job code, the same on a Celery worker and on the embedded runner: plan a job into batches, and index one
batch with one embedder call. The worker reads each photo's header only; the embedder decodes it, once, and its
perceptual hash comes back with its dogs.

Exactly once: a photo's id is its content hash, so storing it again is a no-op; within a job the first file
with given bytes "owns" them and any other is a duplicate; whether a photo was stored before the job is recorded
the first time it is looked at, so a batch run again after a crash classifies every file the same way; and the
store counts each file's outcome at most once."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dogsearch.core.boxes import BadBox, Box, as_box, clip_marked
from dogsearch.core.errors import DogsearchError, InvalidInput, without_paths
from dogsearch.core.images import ImageInfo, ImageRejected
from dogsearch.gallery.errors import NoDogFound, PhotoOfAnotherDog, PhotoStoredAlready
from dogsearch.gallery.fields import InvalidFields, own_fields
from dogsearch.gallery.ingest import Added, Embedded, Ingestor, Upload
from dogsearch.gallery.records import Dog, marked_entry_id
from dogsearch.jobs.sources import (
    MAX_SKIPPED_LISTED,
    FieldLimits,
    Item,
    JobInputError,
    PhotoUnreadable,
    list_job,
    open_photo,
    remove_tree,
)
from dogsearch.jobs.store import JobStore

log = logging.getLogger("dogsearch.jobs")
# What fails one photo, not its batch: the photo itself, or that dog of it stored already as another dog or with
# other values than the job gives it
REFUSED = (InvalidInput, PhotoOfAnotherDog, PhotoStoredAlready)


def plan_items(store: JobStore, job_id: str, limits: FieldLimits | None = None) -> list[Item] | None:
    """Lists the job's files (blocking: run in a thread); None when the job is no longer active.
    Files with an outcome already (a job resumed after a restart) are left out."""
    job = store.get(job_id)
    if job is None or job["state"] not in ("queued", "running"):
        return None
    root = Path(job["root"])
    manifest = Path(job["manifest"]) if job.get("manifest") else None
    try:
        # The roots checked when the job was accepted: a worker reads what its submitter was allowed to.
        listing = list_job(root, manifest, job.get("labels"), job.get("payload") or {},
                           [Path(r) for r in job["roots"]], limits)
    except (JobInputError, OSError) as exc:
        store.fail(job_id, f"could not list the photos: {reason_of(exc)}")
        return None
    items = listing.items
    if not store.start(job_id, len(items), len(listing.skipped), listing.skipped[:MAX_SKIPPED_LISTED]):
        return None
    done = store.recorded(job_id)
    if len(items) == 0:
        store.record(job_id, [])  # finishes an empty job
        clean_up(store, job_id)
    # A dog's photos go together, those done too: the first of them with a dog is the dog the others join.
    open_dogs = {item.dog for item in items if item.dog is not None and item.file not in done}
    return [item for item in items if item.file not in done or item.dog in open_dogs]


def batches(items: Sequence[Item], size: int) -> list[list[list[Any]]]:
    """Batches as plain lists (they travel as Celery messages). A dog's photos (items.dog, next to each other:
    sources.grouped) are never split: a dog is one batch's, its first photo stored before the others join it."""
    out: list[list[list[Any]]] = []
    batch: list[list[Any]] = []
    n = 0
    while n < len(items):
        dog = items[n].dog
        end = n + 1
        while dog is not None and end < len(items) and items[end].dog == dog:
            end += 1
        rows = [[i.file, i.path, i.fields, i.dog, None if i.box is None else list(i.box)] for i in items[n:end]]
        if batch and len(batch) + len(rows) > size:
            out.append(batch)
            batch = []
        batch += rows
        n = end
    if batch:
        out.append(batch)
    return out


@dataclass
class _Prepared:
    file: str
    fields: dict[str, Any]
    dog: str | None = None  # the job's name of the dog this photo shows, with others; None: a dog of its own
    upload: Upload | None = None
    info: ImageInfo | None = None  # from its header: nothing is decoded here
    embedded: Embedded | None = None  # its dogs and hash, as the embedder found them
    error: str | None = None
    marked: Box | None = None  # the manifest's box, clipped to the photo: that dog alone, no detector

    @property
    def entry_id(self) -> str:
        """The entry its dog is stored as: the photo's first dog's, or the marked dog's."""
        return self.upload.entry_id if self.marked is None else marked_entry_id(self.upload.photo_id, self.marked)


# A photo's outcome once stored: its item, why it failed (None: it did not), its dogs as stored.
Outcome = tuple[_Prepared, str | None, list[Dog]]


def _prepare(ingestor: Ingestor, roots: list[str], file: str, path: str, fields: dict[str, Any],
             dog: str | None = None, box: list[float] | None = None, owner: str | None = None,
             admin: bool = False, job: str | None = None) -> _Prepared:
    item = _Prepared(file, fields, dog)
    try:
        data = open_photo(path, roots, ingestor.limits.max_bytes)
        item.info = ingestor.limits.probe(data)
        if box is not None:
            item.marked = clip_marked(as_box(box), item.info.width, item.info.height)
        item.fields = ingestor.report_from_photo(fields, data)
    except (ImageRejected, PhotoUnreadable, BadBox, InvalidFields) as exc:
        item.error = without_paths(exc.reason)
        return item
    item.upload = Upload(data, item.fields, owner=owner, admin=admin, job=job)
    return item


async def run_batch(ingestor: Ingestor, store: JobStore, job_id: str, batch: list[list[Any]], *,
                    require_dog: bool = True) -> None:
    """Indexes one batch, every dog found in a photo its own entry, and records each file's outcome; with
    `require_dog`, a photo in which no dog is found fails. Raises Unavailable (or TimedOut) when the embedder or the
    search service cannot serve (the caller retries the batch; nothing is counted until it succeeds)."""
    job = await asyncio.to_thread(store.get, job_id)
    if job is None or job["state"] not in ("queued", "running"):
        await asyncio.to_thread(clean_up, store, job_id)
        return
    roots = job["roots"]  # checked again as each file is read: a link may point elsewhere by now
    owner = job.get("owner")  # the key that started the job owns every dog it adds
    admin = bool(job.get("admin"))  # an admin's job fills in what another key's dog lacks, as the admin's POST
    prepared = await asyncio.to_thread(lambda: [_prepare(ingestor, roots, *row, owner=owner, admin=admin, job=job_id)
                                                for row in batch])
    outcomes: list[tuple[str, str, str | None]] = []
    readable: list[_Prepared] = []
    for item in prepared:
        if item.error:
            outcomes.append((item.file, "failed", item.error))
        else:
            readable.append(item)

    # Each step below is one store call for the whole batch.
    owners: list[_Prepared] = []
    claimed = await asyncio.to_thread(store.claim, job_id, [(item.entry_id, item.file) for item in readable])
    for item, owner in zip(readable, claimed, strict=True):
        if owner != item.file:
            outcomes.append((item.file, "duplicate", None))
        else:
            owners.append(item)

    # stored: every dog of the photo is (a photo of which one dog was added on its own gets its others now); a
    # marked dog: its own entry is
    stored = await ingestor.stored_photos([item.upload for item in owners if item.marked is None])
    stored_marked = await ingestor.stored([item.entry_id for item in owners if item.marked is not None])
    found = [stored.get(item.upload.photo_id, []) if item.marked is None else
             [stored_marked[item.entry_id]] if item.entry_id in stored_marked else [] for item in owners]
    before_job = await asyncio.to_thread(store.prior, job_id, [(item.entry_id, bool(entries))
                                                               for item, entries in zip(owners, found, strict=True)])
    # a dog's fields are its first photo's (the others join it with its own): a later one's are not the job's
    first_of_dog = {item.dog: item for item in reversed(readable) if item.dog is not None}
    fresh: list[_Prepared] = []
    for item, entries, was_stored in zip(owners, found, before_job, strict=True):
        if not was_stored:
            fresh.append(item)
            continue
        if item.dog is None or first_of_dog[item.dog] is item:
            try:  # the fields the job gives it that its dog lacks are filled in: a folder's breed, a new column
                await ingestor.keep(item.upload, entries)
            except PhotoStoredAlready as exc:  # other values, or another key's dog: the job's would be lost
                outcomes.append((item.file, "failed", reason_of(exc)))
                continue
        outcomes.append((item.file, "already_stored", None))
    await _embed(ingestor, fresh, require_dog)
    for item in fresh:
        if item.error:
            outcomes.append((item.file, "failed", item.error))
    fresh = [item for item in fresh if not item.error]

    stored_dogs: list[str] = []
    fresh_files = {item.file for item in fresh}
    singles = [item for item in fresh if item.dog is None and item.marked is None]
    marked = [item for item in fresh if item.dog is None and item.marked is not None]
    dogs: dict[str, list[_Prepared]] = {}
    for item in readable:  # every photo of a dog, stored or not: the dog may be one stored before
        if item.dog is not None:
            dogs.setdefault(item.dog, []).append(item)
    done = await _index(ingestor, singles, require_dog) + await _index_marked(ingestor, marked)
    for photos in dogs.values():
        done += await _index_dog(ingestor, photos, fresh_files, require_dog)
    for item, error, stored in done:
        if error:
            outcomes.append((item.file, "failed", error))
        else:
            stored_dogs += [dog.entry_id for dog in stored]
            # as stored: a batch run again after a crash says the same of a photo its first run stored
            near = any("near_duplicate_of" in dog.payload for dog in stored)
            outcomes.append((item.file, "near_duplicate" if near else "indexed", None))
    # Before the outcomes: a batch that dies in between runs again and announces its dogs again (the check adds
    # nothing twice); announced after, a finished job's batch would never run again and the alerts would be lost.
    await ingestor.announce(stored_dogs)
    await asyncio.to_thread(store.record, job_id, outcomes)
    if await asyncio.to_thread(store.state, job_id) not in ("queued", "running"):
        await asyncio.to_thread(clean_up, store, job_id)


def clean_up(store: JobStore, job_id: str) -> None:
    """An uploaded zip's files are the job's own: gone once the job is over."""
    job = store.get(job_id)
    if job and job.get("source") == "upload" and job["roots"]:
        remove_tree(Path(job["roots"][0]))


async def _embed(ingestor: Ingestor, items: list[_Prepared], require_dog: bool) -> None:
    """Sets every photo's dogs (each marked one's alone) and hash, with one embedder call: a photo that cannot be
    read gets its `error`, the others their `embedded`. If the embedder refuses the batch all the same, the photos go
    one by one so that only the one it refuses fails."""
    if not items:
        return
    photos = [(item.upload.data, item.marked) for item in items]
    try:
        for item, seen in zip(items, await ingestor.embed(photos, require_dog=require_dog, partial=True), strict=True):
            item.embedded, item.error = (None, reason_of(seen)) if isinstance(seen, InvalidInput) else (seen, None)
        return
    except InvalidInput as exc:
        if len(items) == 1:
            items[0].error = reason_of(exc)
            return
    for item, photo in zip(items, photos, strict=True):
        try:
            item.embedded = (await ingestor.embed([photo], require_dog=require_dog))[0]
        except InvalidInput as exc:
            item.error = reason_of(exc)


async def _index_dog(ingestor: Ingestor, photos: list[_Prepared], fresh: set[str],
                     require_dog: bool) -> list[Outcome]:
    """The photos of one dog of the job (their largest dog each), in order: the first whose dog is stored (before
    the job, or by a run of this batch that a dying worker left half done) or that shows a dog when added is the
    dog, the others are added to it as its photos, with its fields. Outcomes of the `fresh` ones (the others' are
    known: duplicates, stored before), each with the entry it stored (the batch announces them to the watches)."""
    stored = await ingestor.stored([photo.entry_id for photo in photos])
    outcomes: list[Outcome] = []
    dog = None
    rest: list[_Prepared] = []
    for photo in photos:
        if dog is not None:
            if photo.file in fresh:
                rest.append(photo)
        elif photo.entry_id in stored:
            dog = Dog.from_entry(stored[photo.entry_id])
            if photo.file in fresh:  # not stored before the job: by a run of this batch that did not finish
                outcomes.append((photo, None, [dog]))
        elif photo.file in fresh:
            try:
                dog = (await ingestor.add(replace(photo.upload, fields=photo.fields), 0, box=photo.marked,
                                          require_dog=require_dog, announce=False, embedded=photo.embedded)).dog
                outcomes.append((photo, None, [dog]))
            except REFUSED as exc:
                outcomes.append((photo, reason_of(exc), []))
    if not rest:
        return outcomes
    own = own_fields(dog.payload)

    async def join(photo: _Prepared) -> Outcome:
        upload = replace(photo.upload, fields=own, owner=dog.owner)
        try:
            added = await ingestor.add_photo(dog, upload, 0, box=photo.marked, require_dog=require_dog,
                                             announce=False, embedded=photo.embedded)
        except REFUSED as exc:
            return photo, reason_of(exc), []
        return photo, None, [added.dog]

    async with ingestor.dog_locks.hold([dog.id]):  # at once: their stores overlap
        outcomes += await asyncio.gather(*(join(photo) for photo in rest))
    return outcomes


async def _index_marked(ingestor: Ingestor, items: list[_Prepared]) -> list[Outcome]:
    """Photos whose dog the manifest marks: each that dog alone (the embedder did not ask the detector), all at
    once."""
    async def one(item: _Prepared) -> Outcome:
        try:
            added = await ingestor.add(replace(item.upload, fields=item.fields), box=item.marked, announce=False,
                                       embedded=item.embedded)
        except REFUSED as exc:
            return item, reason_of(exc), []
        return item, None, [added.dog]

    return list(await asyncio.gather(*(one(item) for item in items)))


async def _index(ingestor: Ingestor, items: list[_Prepared],
                 require_dog: bool) -> list[Outcome]:
    """The photos' dogs, as the embedder found them, stored with one call; if the batch is refused because of one
    photo (PhotoOfAnotherDog: Ingestor.new_dog_ids found no id left for it; PhotoStoredAlready: another call stored
    it since the batch looked, with other values), the photos go one by one so that only that one fails. A photo
    without a dog fails (with `require_dog`). Each photo: (its item, why it failed or None, its dogs as stored)."""
    if not items:
        return []
    uploads = [(replace(item.upload, fields=item.fields), item.info) for item in items]
    embedded = [item.embedded for item in items]

    def outcome(item: _Prepared, dogs: list[Added]) -> Outcome:
        return item, None if dogs else NoDogFound.REASON, [added.dog for added in dogs]

    try:
        added = await ingestor.add_many(uploads, require_dog=require_dog, embedded=embedded)
        return [outcome(item, dogs) for item, dogs in zip(items, added, strict=True)]
    except (PhotoOfAnotherDog, PhotoStoredAlready) as exc:
        if len(items) == 1:
            return [(items[0], reason_of(exc), [])]
    results = []
    for item, upload in zip(items, uploads, strict=True):
        try:
            results.append(outcome(item, (await ingestor.add_many([upload], require_dog=require_dog,
                                                                  embedded=[item.embedded]))[0]))
        except (PhotoOfAnotherDog, PhotoStoredAlready) as exc:
            results.append((item, reason_of(exc), []))
    return results


def reason_of(exc: BaseException) -> str:
    """Why a file failed, for the job's errors: a domain error's own words with no server path in them. Anything
    else is a bug whose details go to the log, not to the job's readers (no repr, no class name, no path)."""
    if isinstance(exc, DogsearchError):
        return without_paths(exc.reason)
    if isinstance(exc, OSError):
        return (exc.strerror or "input/output error").lower()
    return "an internal error, see the worker's log"


def give_up(store: JobStore, job_id: str, batch: list[list[Any]], reason: str) -> None:
    """A batch that kept failing (its services down through the retry window): its files fail, the job goes on."""
    store.record(job_id, [(file, "failed", reason) for file, *_ in batch])


def delivery_key(batch: list[list[Any]], attempt: int = 0) -> str:
    """Names one delivery of a batch (its files, and which retry it is: a retry is a new message, not a redelivery)."""
    files = json.dumps([row[0] for row in batch]).encode()
    return f"{hashlib.sha256(files).hexdigest()[:32]}:{attempt}"


def poisoned(store: JobStore, job_id: str, batch: list[list[Any]], key: str, max_deliveries: int) -> bool:
    """Counts this delivery of the batch before it runs; past `max_deliveries` (its worker died running it each
    time: a photo that crashes a decoder, a model that runs out of memory) its files fail and it runs no more."""
    n = store.deliver(job_id, key)
    if n <= max_deliveries:
        return False
    log.error("a batch of job %s stopped its worker %d times: its files fail", job_id, n - 1)
    give_up(store, job_id, batch, f"this batch stopped the worker {n - 1} times")
    return True
