"""Adding photos to the gallery: check, find and embed their dogs, keep the photo, upsert the dogs' vectors. Shared by
POST /v1/dogs, bulk jobs and re-indexing, so every way in stores a dog the same way."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dogsearch.core import phash as ph
from dogsearch.core.boxes import BadBox, Box, clip_marked
from dogsearch.core.errors import InvalidInput
from dogsearch.core.exif import taken
from dogsearch.core.images import ImageInfo, ImageLimits
from dogsearch.gallery.contracts import Embedder, FoundDog, Hashes, Index, PhotoDogs
from dogsearch.gallery.errors import NoDogFound, NoSuchDog, PhotoOfAnotherDog, PhotoStoredAlready
from dogsearch.gallery.fields import match_keys, same_value, shown_value
from dogsearch.gallery.locks import PhotoLocks
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import (
    MAX_PHOTO_DOGS,
    MAX_REGROWN,
    Dog,
    dog_created_at,
    entry_id,
    marked_entry_id,
    photo_dogs,
    photo_id,
    regrown_dog_id,
    sha256_hex,
)
from dogsearch.gallery.reports import PhotoReport, asks_photo, from_photo, photo_report
from dogsearch.gallery.space import VectorSpace
from dogsearch.search.contract import CollectionMissing

_SCROLL_PAGE = 256  # entries a look-up reads at a time (the search service takes at most 1000)
_SHOWN_LOST = 5  # of the fields a refusal of a photo stored already names, at most (a dog has up to 64)
_WRITERS = 8  # photo writes of a batch at once: fsyncs overlap (about 4x faster on one disk)
_NewPhoto = tuple[str, "Upload", ImageInfo, int | None]  # an entry stored with it, its upload, info, perceptual hash
log = logging.getLogger("dogsearch.gallery")


@dataclass(frozen=True)
class Upload:
    """A photo of a new dog, with the dog's fields."""

    data: bytes
    fields: dict[str, Any]  # the user's fields, already checked (dogsearch.gallery.fields.user_fields)
    sha256: str = field(default="", repr=False)  # of `data`, hashed once (a phone photo's takes milliseconds)
    owner: str | None = None  # who adds it (an API key's name), when writes need a key
    admin: bool = False  # who adds it may change any key's dog (an admin key): fills in what another key's lacks
    job: str | None = None  # the bulk job that adds it, if one does

    def __post_init__(self) -> None:
        if not self.sha256:
            object.__setattr__(self, "sha256", sha256_hex(self.data))

    @property
    def photo_id(self) -> str:
        return photo_id(self.sha256)

    @property
    def entry_id(self) -> str:
        """The photo's (first) dog's entry: the same photo uploaded twice is one dog."""
        return entry_id(self.photo_id)


@dataclass(frozen=True)
class Embedded:
    """What the embedder found in one photo (its dogs, their vectors, its perceptual hash), for a caller that asks
    before it stores: a bulk job embeds a batch's photos in one call and sets the unreadable ones aside, then hands
    each to `add`, `add_photo` or `add_many`, which do not decode the photo again."""

    model: str  # the id of the vectors
    photo: PhotoDogs


@dataclass(frozen=True)
class Added:
    dog: Dog
    created: bool  # False: this photo was already stored, and `dog` is the stored one


class Ingestor:
    def __init__(self, embedder: Embedder, index: Index, photos: PhotoStore, space: VectorSpace,
                 limits: ImageLimits, require_dog: bool = True) -> None:
        """`require_dog`: a photo in which the detector finds no dog is refused (NoDogFound); else its whole photo is
        stored as the dog. The default of `add` and `add_many`."""
        self.embedder, self.index, self.photos, self.space, self.limits = embedder, index, photos, space, limits
        self.require_dog = require_dog
        self.locks = PhotoLocks()  # shared with the gallery's deletes
        # A dog's photos are added and removed one call at a time (its last photo stays); taken before photo locks.
        self.dog_locks = PhotoLocks()
        # Told the entries of dogs just stored, to check them against the watches (set by whoever runs the watches:
        # a check in this process, or a task for the workers).
        self.on_stored: Callable[[list[str]], Awaitable[None]] | None = None
        # Where new photos' perceptual hashes are filed and their look-alikes found (set where a job store is: the
        # gateway's, a worker's); None: a photo is compared with the others of its call only.
        self.hashes: Hashes | None = None

    async def announce(self, entry_ids: Sequence[str]) -> None:
        """Dogs were stored: checks them against the watches. Called after they are stored and before the caller
        reports success, also when they had been stored before (a retried upload, a batch run again after a crash):
        a check twice records nothing twice, a check missed would be a lost alert."""
        if self.on_stored is not None and entry_ids:
            await self.on_stored(list(entry_ids))

    def read_report(self, data: bytes) -> PhotoReport:
        """When and where the photo `data` says it was taken (its EXIF), as a report's fields. Blocking (reads the
        photo's header, checked as any upload is)."""
        return photo_report(taken(self.limits.exif(data)))

    def report_from_photo(self, fields: dict[str, Any], data: bytes) -> dict[str, Any]:
        """`fields` (checked by user_fields with from_photo) with a `seen_at` or `location` given as "photo" set to
        when or where the photo `data` was taken; InvalidFields when it does not say. Blocking."""
        return from_photo(fields, self.read_report(data)) if asks_photo(fields) else fields

    async def stored(self, entry_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """{id: stored entry} for the stored ones among `entry_ids`, in one call."""
        if not entry_ids:
            return {}
        try:
            return await self.index.lookup(entry_ids)
        except CollectionMissing:  # nothing stored yet
            return {}

    async def stored_photos(self, uploads: Sequence[Upload]) -> dict[str, list[dict[str, Any]]]:
        """{photo id: its stored entries, first dog first} for the photos among `uploads` whose dogs are all stored
        (as many as its first entry says the photo shows), in two calls."""
        first = await self.stored([upload.entry_id for upload in uploads])
        others = {upload.photo_id: [entry_id(upload.photo_id, i) for i in range(1, photo_dogs(first[upload.entry_id]))]
                  for upload in uploads if upload.entry_id in first}
        found = first | await self.stored([e for entries in others.values() for e in entries])
        return {photo: [found[entry_id(photo)], *(found[e] for e in entries)] for photo, entries in others.items()
                if all(e in found for e in entries)}

    async def embed(self, photos: Sequence[tuple[bytes, Box | None]], *, require_dog: bool | None = None,
                    partial: bool = False) -> list[Embedded | InvalidInput]:
        """Each photo's dogs as `add` would store them (the detector's, or the one its box marks: (photo file, box
        or None)), in one embedder call; nothing is stored. InvalidInput when the embedder refuses a photo (it says
        which; with `partial`, that photo's error is in the list instead), ModelMismatch when its vectors are not the
        gallery's."""
        require = self.require_dog if require_dog is None else require_dog
        boxes = [box for _, box in photos]
        embedding = await self.embedder.embed_dogs([data for data, _ in photos], whole_if_none=not require, seems=False,
                                                   partial=partial, phash=True,
                                                   boxes=boxes if any(box is not None for box in boxes) else None)
        await self.space.check(embedding.model)
        return [photo if isinstance(photo, InvalidInput) else Embedded(embedding.model, photo)
                for photo in embedding.photos]

    async def add(self, upload: Upload, dog: int = 0, *, box: Box | None = None, require_dog: bool | None = None,
                  announce: bool = True, embedded: Embedded | None = None) -> Added:
        """One dog of a photo: the `dog`-th the detector finds (largest first), or the one the user marked (`box`, in
        the photo's pixels). Its header is checked here (size, format, pixels); the embedder decodes it, which finds a
        truncated or corrupt one before anything is stored. NoDogFound when the photo shows none, NoSuchDog when
        fewer. `announce`: False when the caller announces it with others (a bulk job's batch). `embedded`: what
        `embed` found in this photo (with the same `box` and `require_dog`), when the caller asked already. That dog
        of that photo stored already is the stored dog (created False), with the upload's fields it lacked (`keep`)."""
        require = self.require_dog if require_dog is None else require_dog
        info = await asyncio.to_thread(self.limits.probe, upload.data)
        entry, marked = self._which(upload, info, dog, box)
        async with self.locks.hold([upload.photo_id]):
            point = (await self.stored([entry])).get(entry)
            created = point is None
            if not created:
                await asyncio.to_thread(self._restore_photos, [(Dog.from_entry(point), upload)])
            else:
                dog_id = (await self.new_dog_ids([entry]))[entry]
                seen = embedded or (await self.embed([(upload.data, marked)], require_dog=require))[0]
                point = _point(upload, info, pick(seen.photo, dog), entry, seen.model, len(seen.photo.dogs),
                               dog_id=dog_id)
                await self._store([(point["id"], upload, info, seen.photo.phash)], [point])
        try:
            if not created:  # outside the photo's lock: a dog's is taken first
                [point] = await self.keep(upload, [point])
        finally:
            if announce:  # refused too: the call that stored it may have died before its own; filled in, as it is now
                await self.announce([entry])
        return Added(Dog.from_entry(point), created)

    @staticmethod
    def _which(upload: Upload, info: ImageInfo, dog: int, box: Box | None) -> tuple[str, Box | None]:
        """The entry a photo's `dog`-th dog, or its dog marked by `box`, is stored as; and the box clipped to the
        photo."""
        check_dog(dog, box)
        if box is None:
            return entry_id(upload.photo_id, dog), None
        marked = clip_marked(box, info.width, info.height)
        return marked_entry_id(upload.photo_id, marked), marked

    async def add_photo(self, dog: Dog, upload: Upload, index: int = 0, *, box: Box | None = None,
                        require_dog: bool | None = None, announce: bool = True,
                        embedded: Embedded | None = None) -> Added:
        """Another photo of a stored dog (read from its cover): the photo's `index`-th dog (or the one `box` marks)
        becomes an entry of `dog`, not its cover, with the dog's own fields (upload.fields) and owner. The same photo
        again is the stored entry (created False); that dog of that photo stored as another dog, or another dog of
        this photo already a photo of this one, is a PhotoOfAnotherDog. The caller holds the dog's lock
        (dog_locks). The new photo is checked against the watches as a new dog's is (`announce`, `embedded`: as in
        add)."""
        require = self.require_dog if require_dog is None else require_dog
        info = await asyncio.to_thread(self.limits.probe, upload.data)
        entry, marked = self._which(upload, info, index, box)
        async with self.locks.hold([upload.photo_id]):
            point = (await self.stored([entry])).get(entry)
            created = point is None
            if not created:
                found = Dog.from_entry(point)
                if found.id != dog.id:
                    raise PhotoOfAnotherDog(f"dog {index} of this photo is dog {found.id}, not dog {dog.id}"
                                            if marked is None else f"the dog marked in this photo is dog {found.id}, "
                                                                   f"not dog {dog.id}", dog_id=found.id)
                await asyncio.to_thread(self._restore_photos, [(found, upload)])
            else:
                if await self.index.count({"dog_id": dog.id, "photo_id": upload.photo_id}):
                    raise PhotoOfAnotherDog(f"another dog of this photo is already a photo of dog {dog.id}")
                seen = embedded or (await self.embed([(upload.data, marked)], require_dog=require))[0]
                point = _point(upload, info, pick(seen.photo, index), entry, seen.model, len(seen.photo.dogs),
                               dog_id=dog.id, cover=False)
                await self._store([(point["id"], upload, info, seen.photo.phash)], [point])
        if announce:
            await self.announce([entry])
        return Added(Dog.from_entry(point), created)

    async def remark(self, entry: dict[str, Any], data: bytes, box: Box) -> Dog:
        """A stored entry's dog as its user marks it in its photo (`data`, the stored photo; `box` in its pixels):
        re-embedded from that box and stored `marked` with it, under the same id (the same photo added again is
        still this dog), with a new breed guess unless a breed was given. Checked against the watches again. The
        caller holds the dog's lock."""
        info = await asyncio.to_thread(self.limits.probe, data)
        marked = clip_marked(box, info.width, info.height)
        async with self.locks.hold([entry["payload"]["photo_id"]]):
            seen = (await self.embed([(data, marked)], require_dog=True))[0]
            dog, model = seen.photo.dogs[0], seen.model
            payload = {k: v for k, v in entry["payload"].items() if k != "breed_guess"}
            payload |= {"box": [float(v) for v in dog.box], "marked": True, "model": model}
            if dog.breed_guess and "breed" not in payload:
                payload["breed_guess"] = [dict(g) for g in dog.breed_guess]
            point = {"id": entry["id"], "vector": dog.vector, "payload": payload}
            await self.index.upsert([point])
        await self.announce([entry["id"]])
        return Dog.from_entry(point)

    async def new_dog_ids(self, entry_ids: Sequence[str]) -> dict[str, str]:
        """The id of the dog that each of `entry_ids`, not stored, starts: its own, unless a stored dog has that id
        (the photo the dog was made from was removed from it, and the dog kept its id); then the first of the entry's
        regrown ids that no stored dog has. PhotoOfAnotherDog when the entry has started MAX_REGROWN such dogs. One
        count, nearly always."""
        taken = await self.stored_dog_ids(entry_ids)
        if not taken:
            return {entry: entry for entry in entry_ids}
        regrown = {entry: [regrown_dog_id(entry, n) for n in range(1, MAX_REGROWN + 1)] for entry in taken}
        used = await self.stored_dog_ids(dog for dogs in regrown.values() for dog in dogs)
        ids = {}
        for entry in entry_ids:
            free = [entry] if entry not in taken else [dog for dog in regrown[entry] if dog not in used]
            if not free:
                raise PhotoOfAnotherDog(f"this photo was removed from dog {entry} and has started {MAX_REGROWN} "
                                        "dogs of its own since: add it to one of them")
            ids[entry] = free[0]
        return ids

    async def stored_dog_ids(self, ids: Iterable[str]) -> set[str]:
        """Those of `ids` that are the ids of stored dogs: _SCROLL_PAGE ids a look-up (a filter may name many), each
        read over every cover it matches (a dog whose cover moves has two for a moment: delete_photo sets the new one
        first), so no dog hides another. A count for up to _SCROLL_PAGE ids, nearly always (no payloads)."""
        named, found = sorted(set(ids)), set()
        try:
            for start in range(0, len(named), _SCROLL_PAGE):
                dogs, cursor = {"dog_id": named[start:start + _SCROLL_PAGE], "cover": True}, None
                if not await self.index.count(dogs):
                    continue
                while True:
                    page = await self.index.scroll(_SCROLL_PAGE, cursor, dogs)
                    found |= {p["payload"]["dog_id"] for p in page["points"]}
                    if (cursor := page["next"]) is None:
                        break
        except CollectionMissing:  # nothing stored yet
            return set()
        return found

    async def add_many(self, uploads: Sequence[tuple[Upload, ImageInfo]], *, require_dog: bool | None = None,
                       embedded: Sequence[Embedded] | None = None) -> list[list[Added]]:
        """Every dog of several checked photos, each its own entry (and dog), with one embedder call: the bulk path
        runs the model at its batch size. Each photo's dogs in order, largest first; none for a photo in which no dog
        is found (with `require_dog`). A photo whose dogs are all stored already is not embedded again (a stored one
        whose file is missing gets it written again) and comes back as those dogs; one of whose dogs only some were
        stored (added one at a time) is embedded again for the others, and the stored ones are kept as they are.
        Each photo's file is on disk before its vectors are stored, and a photo is added or deleted by one call at a
        time in this process: of two uploads of the same photo one creates its dogs, the other finds them. A photo
        stored already gets the upload's fields its dogs lack, or is a PhotoStoredAlready before anything is stored
        (`keep`; the caller tries the photos one by one). `embedded`: what `embed` found in each photo (with the same
        `require_dog`), when the caller asked already."""
        require = self.require_dog if require_dog is None else require_dog
        lacking: dict[str, dict[str, Any]] = {}
        async with self.locks.hold(upload.photo_id for upload, _ in uploads):
            results = await self._add_many(uploads, require, embedded, lacking)
        await self._fill(lacking)  # outside the photos' locks: a dog's is taken first
        return results

    async def _add_many(self, uploads: Sequence[tuple[Upload, ImageInfo]], require: bool,
                        embedded: Sequence[Embedded] | None, lacking: dict[str, dict[str, Any]]) -> list[list[Added]]:
        stored = await self.stored_photos([upload for upload, _ in uploads])
        results: list[list[Added]] = [[] for _ in uploads]
        todo, found = [], []
        for n, (upload, info) in enumerate(uploads):
            if upload.photo_id in stored:
                dogs = [Dog.from_entry(entry) for entry in _kept(upload, stored[upload.photo_id], lacking)]
                results[n] = [Added(dog, False) for dog in dogs]
                found.append((dogs[0], upload))
            else:
                todo.append((n, upload, info))
        if found:
            await asyncio.to_thread(self._restore_photos, found)
        if not todo:
            return results
        seen = ([embedded[n] for n, _, _ in todo] if embedded is not None else
                await self.embed([(upload.data, None) for _, upload, _ in todo], require_dog=require))
        planned = [(n, upload, info, it.photo.phash,
                    [_point(upload, info, dog, entry_id(upload.photo_id, i), it.model, len(it.photo.dogs))
                     for i, dog in enumerate(it.photo.dogs)])
                   for (n, upload, info), it in zip(todo, seen, strict=True)]
        # Some of a photo's dogs may have been added one by one before: those entries stay as they are.
        later = await self.stored([p["id"] for *_, points in planned for p in points])
        # A PhotoOfAnotherDog here: the caller tries the photos one by one, and only that one fails.
        dog_ids = await self.new_dog_ids([p["id"] for *_, points in planned for p in points if p["id"] not in later])
        for *_, photo_points in planned:
            for point in photo_points:
                if point["id"] in dog_ids:
                    point["payload"]["dog_id"] = dog_ids[point["id"]]
        points, files = [], []
        for _, upload, info, phash, photo_points in planned:
            fresh = [p for p in photo_points if p["id"] not in later]
            if fresh:
                points += fresh
                files.append((fresh[0]["id"], upload, info, phash))
        await self._store(files, points)
        for n, _, _, _, photo_points in planned:
            results[n] += [Added(Dog.from_entry(later[p["id"]]), False) if p["id"] in later else
                           Added(Dog.from_entry(p), True) for p in photo_points]
        return results

    async def keep(self, upload: Upload, entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """A photo stored already (`entries`: stored entries of it), added again with `upload`'s fields: no second
        dog, and none of the fields lost. Those a dog lacks are filled in, on every photo of it (as PATCH sets
        them), where the dog is the upload's key's own or the key is an admin's; one it holds another value of, or
        another key's dog lacking one, is a PhotoStoredAlready naming the dog and them, and nothing is changed. The
        entries as they are now."""
        lacking: dict[str, dict[str, Any]] = {}
        kept = _kept(upload, entries, lacking)
        await self._fill(lacking)
        return kept

    async def _fill(self, lacking: Mapping[str, Mapping[str, Any]]) -> None:
        """Sets on every photo of each dog ({dog id: fields}) those fields, under the dog's lock (a photo added to it
        meanwhile takes them too)."""
        for dog_id, fields in lacking.items():
            async with self.dog_locks.hold([dog_id]):
                entries, cursor = [], None
                while True:
                    page = await self.index.scroll(_SCROLL_PAGE, cursor, {"dog_id": dog_id})
                    entries += [point["id"] for point in page["points"]]
                    if (cursor := page["next"]) is None:
                        break
                await self.index.set_payload(entries, dict(fields) | match_keys(fields))
            log.info("dog %s: filled in %s from its photo added again", dog_id, ", ".join(sorted(fields)))

    async def _store(self, files: Sequence[_NewPhoto], points: list[dict[str, Any]]) -> None:
        """Marks the new photos' look-alikes in their points, files the photos' hashes, writes the photos' files,
        upserts the points, then looks again for look-alikes stored meanwhile. `files`: (an entry stored with the
        photo, its upload, its info, its hash).

        The hashes are filed before the upsert: a process killed after it (its answer lost, a worker gone) leaves a
        stored photo whose hash is filed, found as a look-alike from then on; one killed before leaves a hash of an
        entry that is not stored, which no look takes (only stored entries are look-alikes)."""
        if not points:
            return
        await self._mark(files, points)
        hashed = [(entry, phash) for entry, _, _, phash in files if phash is not None]
        if self.hashes is not None and hashed:
            await asyncio.to_thread(self.hashes.add_phashes, hashed)
        made = await asyncio.to_thread(self._save_photos, files)  # durable before the vector makes it visible
        try:
            await self.index.upsert(points)
        except BaseException as exc:
            await self._undo(made, exc)
            raise
        if self.hashes is not None and hashed:
            await self._mark_concurrent(files, points)

    async def _mark(self, files: Sequence[_NewPhoto], points: list[dict[str, Any]]) -> None:
        """Records in the points of each new photo its perceptual hash (`phash`) and, when it is a near-duplicate
        (the same photo resized or recompressed: within NEAR_DISTANCE bits) of a stored photo or of one of `files`
        stored before it (in the order `dogsearch check` reads: stored_order), the closest one's dog
        (`near_duplicate_of`)."""
        hashed = [(entry, upload.photo_id, phash) for entry, upload, _, phash in files if phash is not None]
        if not hashed:
            return
        stored = await self._stored_look_alikes([phash for *_, phash in hashed])
        dog_of = {point["id"]: point["payload"]["dog_id"] for point in points}
        order = {point["id"]: stored_order(point["payload"]) for point in points}
        marks: dict[str, dict[str, str]] = {}
        for (entry, photo, phash), alike in zip(hashed, stored, strict=True):
            # the closest; of equally close ones, the first stored (the original, not another copy of it), then the
            # first of this call's
            others = sorted((other for _, other in alike if other["photo_id"] != photo), key=stored_order)
            rank = {other["photo_id"]: r for r, other in enumerate(others)}
            found = [(d, rank[other["photo_id"]], other["dog_id"]) for d, other in alike if other["photo_id"] != photo]
            before = sorted((order[e], e, value) for e, other, value in hashed
                            if other != photo and order[e] < order[entry])
            found += [(d, len(rank) + m, dog_of[e]) for m, (d, e) in enumerate(
                _near(phash, [(e, value) for _, e, value in before]))]
            marks[photo] = {"phash": ph.to_hex(phash)} | ({"near_duplicate_of": min(found)[2]} if found else {})
        for point in points:
            point["payload"].update(marks.get(point["payload"]["photo_id"], {}))

    async def _mark_concurrent(self, files: Sequence[_NewPhoto], points: list[dict[str, Any]]) -> None:
        """A look-alike stored by another call at the same moment: each call's first look (_mark) came before the
        other's photo was stored, so neither took the other. Looked again now that this call's photos are filed and
        stored, the later of the two looks sees the other photo, filed and stored too. Of such a pair, the photo
        stored later (created_at, then photo id: an order both calls agree on) is marked a copy of the other, by
        whichever call sees it (both write the same). Only photos that are no one's copy yet are looked at and
        marked: a mark the first look made stays."""
        ours = {upload.photo_id for _, upload, _, _ in files}
        by_photo: dict[str, list[dict[str, Any]]] = {}
        for point in points:
            by_photo.setdefault(point["payload"]["photo_id"], []).append(point)
        todo = [(upload.photo_id, phash) for _, upload, _, phash in files if phash is not None
                and "near_duplicate_of" not in by_photo[upload.photo_id][0]["payload"]]
        if not todo:
            return
        stored = await self._stored_look_alikes([phash for _, phash in todo])
        for (photo, _), alike in zip(todo, stored, strict=True):
            mine = by_photo[photo][0]["payload"]
            my_dogs = {point["payload"]["dog_id"] for point in by_photo[photo]}
            others = [(d, other) for d, other in alike if other["photo_id"] not in ours]
            copied = _copied(mine, my_dogs, others)
            if copied:
                for point in by_photo[photo]:
                    point["payload"]["near_duplicate_of"] = copied
                await self.index.set_payload([point["id"] for point in by_photo[photo]], {"near_duplicate_of": copied})
                continue
            for _, other in others:  # stored after it, and no one's copy: a copy of this one
                if "near_duplicate_of" not in other:
                    await self._mark_copy(other["photo_id"], mine["dog_id"])

    async def repoint_copies(self, dog_id: str) -> int:
        """After dog `dog_id` is deleted: each photo marked a copy of its photo names instead the dog it copies among
        those left (copied_dog), as `dogsearch check --repair` would; one with no look-alike stored before it keeps
        the mark (readers are not shown a deleted dog's: Gallery.shown). A page of copies at a time, one write for
        the photos that name the same dog. How many entries now name another dog."""
        if self.hashes is None:
            return 0
        moved, cursor = 0, None
        while True:
            page = await self.index.scroll(256, cursor, {"near_duplicate_of": dog_id})
            by_photo: dict[str, list[dict[str, Any]]] = {}
            for point in page["points"]:
                if point["payload"].get("phash"):
                    by_photo.setdefault(point["payload"]["photo_id"], []).append(point)
            stored = await self._stored_look_alikes([int(points[0]["payload"]["phash"], 16)
                                                     for points in by_photo.values()])
            now_of: dict[str, list[str]] = {}
            for (photo, points), alike in zip(by_photo.items(), stored, strict=True):
                copied = _copied(points[0]["payload"], {p["payload"]["dog_id"] for p in points},
                                 [(d, other) for d, other in alike if other["photo_id"] != photo])
                if copied:
                    now_of.setdefault(copied, []).extend(p["id"] for p in points)
            for copied, entries in now_of.items():
                await self.index.set_payload(entries, {"near_duplicate_of": copied})
                moved += len(entries)
            if (cursor := page["next"]) is None:
                return moved

    async def _stored_look_alikes(self, values: Sequence[int]) -> list[list[tuple[int, dict[str, Any]]]]:
        """For each hash, the stored entries (their payloads) whose photo's filed hash is within NEAR_DISTANCE bits,
        closest first: a photo deleted since its hash was filed is no look-alike any more. Two calls at most: the
        filed hashes, and which of the close ones are stored."""
        if not values:
            return []
        filed = (await asyncio.to_thread(self.hashes.near, values) if self.hashes is not None
                 else [[] for _ in values])
        close = [sorted(_near(value, near)) for value, near in zip(values, filed, strict=True)]
        alive = await self.stored(list({entry for candidates in close for _, entry in candidates}))
        return [[(d, alive[entry]["payload"]) for d, entry in candidates if entry in alive] for candidates in close]

    async def _mark_copy(self, photo: str, of_dog: str) -> None:
        """Marks every stored entry of `photo` a copy of `of_dog`'s photo; a bulk job that stored it counts it a
        near-duplicate (the call that stored it did not see the original: its answer and its count said otherwise)."""
        page = await self.index.scroll(MAX_PHOTO_DOGS * 4, None, {"photo_id": photo})
        entries = [point["id"] for point in page["points"]]
        await self.index.set_payload(entries, {"near_duplicate_of": of_dog})
        log.info("photo %s stored at the same moment as dog %s's look-alike: marked its copy", photo, of_dog)
        for job in {point["payload"]["job"] for point in page["points"] if point["payload"].get("job")}:
            await asyncio.to_thread(self.hashes.copied_late, job, entries)

    def _save_photos(self, todo: Sequence[_NewPhoto]) -> dict[str, tuple[str, str]]:
        """Writes the photos, a batch's on several threads (each write waits for its fsync: together the disk
        overlaps them); {entry id: (photo id, format)} of the files this call made. On a failure (a full disk), the
        files it made are removed again before the error goes on: no vector was stored."""
        def save(item: _NewPhoto) -> tuple[str, str] | None:
            _, upload, info, _ = item
            made_it = self.photos.save(upload.photo_id, info.format, upload.data)
            return (upload.photo_id, info.format) if made_it else None

        made: dict[str, tuple[str, str]] = {}
        failures: list[BaseException] = []
        with ThreadPoolExecutor(min(_WRITERS, len(todo))) as pool:
            for item, future in [(item, pool.submit(save, item)) for item in todo]:
                try:
                    if (photo := future.result()) is not None:
                        made[item[0]] = photo
                except BaseException as exc:
                    failures.append(exc)
        if failures:
            self._delete_photos(made.values())
            raise failures[0]
        return made

    async def _undo(self, made: dict[str, tuple[str, str]], exc: BaseException) -> None:
        """After a failed upsert, removes the photo files this call made whose entry is not stored. The failure may
        be ambiguous (a timeout, a dropped connection, a 5xx: the store may have applied it), so look first; when
        looking is not possible either, keep them: a photo without an entry is only disk space (`dogsearch check
        --repair` removes it), an entry without its photo is a dog whose image is lost."""
        if not made:
            return
        if not isinstance(exc, Exception):  # cancelled: no call can be made now
            return
        try:
            stored = await self.index.lookup(list(made))
        except Exception as look:
            log.warning("upsert failed and its outcome is unknown: keeping %d photo files", len(made),
                        extra={"error": str(look)})
            return
        await asyncio.to_thread(self._delete_photos, [made[e] for e in made if e not in stored])

    def _delete_photos(self, photos) -> None:
        for photo, fmt in photos:
            self.photos.delete(photo, fmt)

    def _restore_photos(self, found: Sequence[tuple[Dog, Upload]]) -> None:
        """A stored dog whose photo file is missing (lost before writes were durable, or removed by hand) gets it
        back from the same bytes uploaded again."""
        for dog, upload in found:
            if dog.photo_id == upload.photo_id and not self.photos.original(dog.photo_id, dog.format).exists():
                log.warning("photo of dog %s was missing: written again from a new upload", dog.id)
                self.photos.save(dog.photo_id, dog.format, upload.data)


def stored_order(payload: dict[str, Any]) -> tuple[str, str]:
    return payload.get("created_at", ""), payload["photo_id"]


@dataclass(frozen=True)
class LookAlike:
    """A stored photo within NEAR_DISTANCE bits of another, as the rule of which dog a copy names reads it."""

    distance: int
    order: tuple[str, str]  # its stored_order
    dog: str
    copies: str | None  # the dog whose photo it is marked a copy of


def copied_dog(order: tuple[str, str], dogs: set[str], alike: Iterable[LookAlike]) -> str | None:
    """The dog whose photo a photo stored at `order` (showing `dogs`) copies, by the look-alikes stored before it:
    the closest one's, and of equally close ones the first stored (the original, not another copy of it). Never a
    look-alike marked a copy of this photo's own dogs: two machines' clocks can disagree about what came first.
    The Ingestor's second look and `dogsearch check` both mark by this rule, so they name the same dog."""
    earlier = [(a.distance, a.order, a.dog) for a in alike if a.order < order and a.copies not in dogs]
    return min(earlier)[2] if earlier else None


def _copied(payload: dict[str, Any], dogs: set[str], alike: Sequence[tuple[int, dict[str, Any]]]) -> str | None:
    """copied_dog of a stored photo (`payload`: one of its entries'), by its stored look-alikes' (distance, payload)."""
    return copied_dog(stored_order(payload), dogs, [
        LookAlike(d, stored_order(other), other["dog_id"], other.get("near_duplicate_of")) for d, other in alike])


def _near(phash: int, others: Sequence[tuple[str, int]]) -> list[tuple[int, str]]:
    """(distance, id) of those of `others` ((id, hash)) within NEAR_DISTANCE bits of `phash`."""
    return [(d, entry) for entry, other in others if (d := ph.distance(phash, other)) <= ph.NEAR_DISTANCE]


def _kept(upload: Upload, entries: Iterable[dict[str, Any]],
          lacking: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored `entries` of a photo added again, with the upload's fields each dog lacks (added to `lacking`:
    {dog id: fields}, for Ingestor._fill); PhotoStoredAlready where a field sent would be lost (Ingestor.keep)."""
    out = []
    for entry in entries:
        stored, dog = entry["payload"], Dog.from_entry(entry)
        other = {k: v for k, v in upload.fields.items() if stored.get(k) is not None and not same_value(stored[k], v)}
        lacks = {k: v for k, v in upload.fields.items() if stored.get(k) is None}
        if other:
            said = _listed([f"{k}: {shown_value(stored[k])} stored, {shown_value(v)} sent" for k, v in other.items()])
            raise PhotoStoredAlready(f"this photo is stored already as dog {dog.id}, with other values than those "
                                     f"sent ({said}): adding it again changes no dog; change that dog's fields "
                                     "instead", dog_id=dog.id)
        if lacks and dog.owner != upload.owner and not upload.admin:
            said = _listed([f"{k}: {shown_value(v)}" for k, v in lacks.items()])
            raise PhotoStoredAlready(f"this photo is stored already as dog {dog.id}, another key's, without fields "
                                     f"sent ({said}): adding it again changes no other key's dog", dog_id=dog.id)
        if lacks:
            lacking.setdefault(dog.id, {}).update(lacks)
        out.append({**entry, "payload": stored | lacks})
    return out


def _listed(said: list[str]) -> str:
    """The first of the fields a refusal names, and how many more."""
    more = f"; {len(said) - _SHOWN_LOST} more" if len(said) > _SHOWN_LOST else ""
    return "; ".join(said[:_SHOWN_LOST]) + more


def check_dog(dog: int, box: Box | None = None) -> None:
    """Which dog of a photo a request asks for: an index (0: the largest), or the one `box` marks, which is then the
    photo's one dog."""
    if dog < 0:
        raise NoSuchDog(f"dog {dog}: a dog's index is 0 or more")
    if box is not None and dog != 0:
        raise BadBox(f"dog {dog} and a box: the marked box is the photo's one dog (dog 0)")


def pick(photo: PhotoDogs, dog: int) -> FoundDog:
    """The `dog`-th dog of a photo: NoDogFound when it shows none, NoSuchDog when fewer."""
    if not photo.dogs:
        raise NoDogFound(seems=photo.seems)
    if not 0 <= dog < len(photo.dogs):
        count = len(photo.dogs)
        raise NoSuchDog(f"no dog {dog}: this photo shows {count} dog{'s' if count > 1 else ''} "
                        f"(dog 0 to {count - 1}, largest first)")
    return photo.dogs[dog]


def _point(upload: Upload, info: ImageInfo, dog: FoundDog, entry: str, model: str, dogs: int, *,
           dog_id: str | None = None, cover: bool = True) -> dict[str, Any]:
    """The entry `entry` of a dog of the photo, which shows `dogs`: the first photo (the cover) of a new dog, whose id
    is `dog_id` (the entry's own when not given; see Ingestor.new_dog_ids), or, not `cover`, another photo of the
    stored dog `dog_id`."""
    record = {
        **upload.fields,
        **match_keys(upload.fields),
        "dog_id": dog_id or entry, "cover": cover, "photo_id": upload.photo_id,
        **({"dog_created_at": dog_created_at(dog_id or entry)} if cover else {}),
        **({"owner": upload.owner} if upload.owner else {}),
        **({"job": upload.job} if upload.job else {}),
        **({} if dog.whole_photo else {"box": [float(v) for v in dog.box]}),  # no box: the whole photo
        **({"marked": True} if dog.marked else {}),  # its box is the user's: a reindex keeps it
        # a suggestion until the user says which breed it is
        **({"breed_guess": [dict(g) for g in dog.breed_guess]} if dog.breed_guess and "breed" not in upload.fields
           else {}),
        "sha256": upload.sha256,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "photo_dogs": dogs,
        "bytes": len(upload.data),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model,
    }
    return {"id": entry, "vector": dog.vector, "payload": record}
