"""The gallery's use cases: add, read, list, delete, search and "more like this". What the public API's routes and
the bulk jobs call; it knows no HTTP.

Dogs are read through their entries (gallery/fields.py): a dog is found by its id on its cover entry, lists show
cover entries, a search ranks dogs by their best entry, and deleting a dog deletes all of its entries (and each
photo no entry shows any more)."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dogsearch.core.boxes import BadBox, Box, iou
from dogsearch.core.errors import InvalidInput
from dogsearch.core.images import ImageLimits, ImageRejected, thumbnail_jpeg
from dogsearch.core.judged import JudgedPart
from dogsearch.gallery.contracts import Embedder, FoundDog, Index, PhotoDogs
from dogsearch.gallery.errors import (
    DogNotFound,
    LastPhoto,
    NoDogFound,
    NoSuchDog,
    PhotoDamaged,
    PhotoMissing,
    PhotoNotFound,
)
from dogsearch.gallery.expansion import Expansion, expand
from dogsearch.gallery.fields import match_keys, own_fields
from dogsearch.gallery.ingest import Added, Ingestor, Upload, check_dog, pick
from dogsearch.gallery.judged import JudgedParts
from dogsearch.gallery.multiquery import Rule, mean_query
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import Dog, Match, Page, Photo, dog_created_at, sha256_hex
from dogsearch.gallery.reports import PhotoReport
from dogsearch.gallery.space import VectorSpace
from dogsearch.search.contract import CollectionMissing

Filter = Mapping[str, Any]
_PAGE = 256  # entries read at a time when a dog's are all needed
PREVIEW_PX = 1024  # the longer side of a preview: a photo shown on a page, the dogs' boxes drawn over it
_MOST_ENTRIES = 1000  # the most nearest entries asked for at once (the search service's default max_k)
NEWEST_FIRST = "-dog_created_at"  # the order dogs are listed in


@dataclass(frozen=True)
class Search:
    matches: list[Match]  # best first
    photo: PhotoDogs  # the (first) query photo's dogs (and what it seems to show)
    dog: int  # the index of the dog searched for
    photos: tuple[PhotoDogs, ...] = ()  # every query photo's


class Gallery:
    def __init__(self, embedder: Embedder, index: Index, photos: PhotoStore, limits: ImageLimits,
                 require_dog: bool = True, expansion: Expansion | None = None,
                 judged_by: JudgedParts | None = None) -> None:
        """`require_dog`: a photo in which no dog is found is refused (NoDogFound) by searches and adds; else its
        whole photo stands for the dog. `expansion`: how searches and "more like this" expand their query
        (gallery/expansion.py; None: not at all). `judged_by`: which part of the vectors same-dog verdicts read
        (core/judged.py; None: the whole vector), for the matches' `judged` scores."""
        self.embedder, self.index, self.photos, self.limits = embedder, index, photos, limits
        self.require_dog, self.expansion, self.judged_by = require_dog, expansion, judged_by
        self.space = VectorSpace(embedder, index)
        self.ingest = Ingestor(embedder, index, photos, self.space, limits, require_dog)
        # Told each dog deleted, once it is gone (set by whoever runs the watches: those made from it end, and it
        # leaves their inboxes).
        self.on_deleted: Callable[[str], Awaitable[None]] | None = None
        # Lists show the newest dogs first; in the id order while an older release's dogs are being dated (they
        # would be in no list meanwhile: gallery/layout.py).
        self.newest_first = True

    async def dog(self, dog_id: str) -> Dog:
        return Dog.from_entry(await self._cover(dog_id))

    async def shown(self, dogs: Sequence[Dog]) -> list[Dog]:
        """`dogs` as a reader is shown them: the dog whose photo a dog's photo copies, deleted since, is no
        look-alike any more (as for a new photo), so `near_duplicate_of` is left out rather than name a dog that is
        gone. One call, only when one of them is a copy."""
        copied = {c for dog in dogs if isinstance(c := dog.payload.get("near_duplicate_of"), str)}
        if not copied:
            return list(dogs)
        alive = await self.ingest.stored_dog_ids(copied)
        return [dog if dog.payload.get("near_duplicate_of") in alive | {None} else
                replace(dog, payload={k: v for k, v in dog.payload.items() if k != "near_duplicate_of"})
                for dog in dogs]

    async def _shown_matches(self, matches: Sequence[Match]) -> list[Match]:
        """`matches` with their dogs as `shown` shows them."""
        dogs = await self.shown([m.dog for m in matches])
        return [m if m.dog is dog else replace(m, dog=dog) for m, dog in zip(matches, dogs, strict=True)]

    async def page(self, limit: int, cursor: str | None = None, filter: Filter | None = None) -> Page:
        covers = {**(filter or {}), "cover": True}
        try:
            if isinstance(copied := covers.get("near_duplicate_of"), str | list) and copied:
                # the copies of a deleted dog's photo are shown as copying nothing (`shown`): none is listed as one
                named = {copied} if isinstance(copied, str) else {c for c in copied if isinstance(c, str)}
                covers["near_duplicate_of"] = sorted(await self.ingest.stored_dog_ids(named)) if named else copied
            # a page goes on in the order of the one before it: its cursor is an id in the id order
            by_id = not self.newest_first if cursor is None else _is_id(cursor)
            page = await self.index.scroll(limit, cursor, covers, order_by=None if by_id else NEWEST_FIRST)
            total = await self.index.count(covers)
        except CollectionMissing:  # nothing stored yet: an empty gallery
            return Page([], None, 0)
        return Page([Dog.from_entry(p) for p in page["points"]], page["next"], total)

    async def delete(self, dog_id: str) -> None:
        async with self.ingest.dog_locks.hold([dog_id]):  # no photo is added to it meanwhile
            await self.dog(dog_id)
            await self._delete_entries(await self._entries({"dog_id": dog_id}))
            await self.ingest.repoint_copies(dog_id)
        if self.on_deleted is not None:
            await self.on_deleted(dog_id)

    async def photos_of(self, dog_id: str) -> list[Photo]:
        """A dog's photos, its cover first, then in the order they were added (a photo just added is last)."""
        await self.dog(dog_id)
        entries = sorted(await self._entries({"dog_id": dog_id}),
                         key=lambda e: (not e["payload"].get("cover"), e["payload"].get("created_at", ""), e["id"]))
        return [Photo.from_entry(e) for e in entries]

    async def add_photo(self, dog_id: str, upload: Upload, dog: int = 0, box: Box | None = None) -> Added:
        """Another photo of a stored dog: the photo's `dog`-th dog (0: the largest) or the one `box` marks, with the
        dog's own fields and owner (upload.fields and owner are not used). The same photo again is the stored one
        (created False)."""
        async with self.ingest.dog_locks.hold([dog_id]):
            cover = await self._cover(dog_id)
            fields = own_fields(cover["payload"])
            owner = cover["payload"].get("owner")
            added = await self.ingest.add_photo(Dog.from_entry(cover), replace(upload, fields=fields, owner=owner),
                                                dog, box=box)
            if added.created:  # a change of the dog's fields (PATCH) while this photo was added reaches it too
                now = own_fields((await self._cover(dog_id))["payload"])
                if now != fields:
                    await self.index.set_payload([added.dog.entry_id], now | match_keys(now))
            return added

    async def likeness(self, dog_id: str, entry: str) -> float | None:
        """How like the dog's other photos one of its photos (`entry`) is: its best cosine to them, of the part
        same-dog verdicts read where they read one (the number a verdict on the pair reads). None: the dog's only
        photo."""
        points = await self.index.lookup([e["id"] for e in await self._entries({"dog_id": dog_id})], with_vector=True)
        if entry not in points:
            raise PhotoNotFound(f"dog {dog_id} has no entry {entry}")
        mine = np.asarray(points[entry]["vector"], dtype=np.float64)
        others = np.asarray([p["vector"] for i, p in points.items() if i != entry], dtype=np.float64)
        if not len(others):
            return None
        part = await self.judged_part()
        if part is None:
            return float(np.max(others @ mine))
        # a stored part's length is 1 / scale: its cosine is the parts' dot product times scale squared
        return float(np.max(others[:, :part.dims] @ mine[:part.dims]) * part.scale ** 2)

    async def alike(self, matches: Sequence[Match]) -> np.ndarray:
        """The matches' own cosines, (n, n): of the entries they were found by, of the part same-dog verdicts read
        where they read one (two reports of one dog are as alike as one dog's photos). NaN where an entry is gone
        since. One lookup of their vectors."""
        ids = [m.dog.entry_id for m in matches]
        points = await self.index.lookup(ids, with_vector=True)
        part = await self.judged_part()
        vectors = [points.get(entry, {}).get("vector") for entry in ids]
        known = np.flatnonzero([v is not None for v in vectors])
        out = np.full((len(ids), len(ids)), np.nan)
        if len(known):
            v = np.array([vectors[i][:None if part is None else part.dims] for i in known], dtype=np.float64)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            out[np.ix_(known, known)] = v @ v.T
        return out

    async def delete_photo(self, dog_id: str, photo: str) -> Dog:
        """Removes one photo of a dog; its cover moves to another photo when it was the cover. A dog's last photo
        is a LastPhoto: delete the dog instead."""
        async with self.ingest.dog_locks.hold([dog_id]):
            await self.dog(dog_id)
            entries = await self._entries({"dog_id": dog_id})
            gone = [e for e in entries if Photo.from_entry(e).id == photo]
            if not gone:
                raise PhotoNotFound(f"dog {dog_id} has no photo {photo}")
            if len(entries) == 1:
                raise LastPhoto(f"photo {photo} is the only photo of dog {dog_id}: delete the dog instead")
            await self._remove(dog_id, entries, gone[:1])
            return await self.dog(dog_id)

    async def drop_photos(self, dog_id: str, photos: Collection[str]) -> int:
        """Removes the dog's entries in `photos` (`dogsearch check --repair --drop-missing`: their files are lost) as
        deleting each of those photos through the API would: the cover moves to a photo that stays (delete_photo);
        with none staying, the dog is deleted (delete: its copies re-pointed, `on_deleted` told). How many entries
        were removed."""
        async with self.ingest.dog_locks.hold([dog_id]):
            entries = await self._entries({"dog_id": dog_id})
            gone = [e for e in entries if Photo.from_entry(e).id in photos]
            if len(gone) < len(entries):
                await self._remove(dog_id, entries, gone)
                return len(gone)
            await self._delete_entries(gone)
            await self.ingest.repoint_copies(dog_id)
        if gone and self.on_deleted is not None:  # none: deleted since the caller looked
            await self.on_deleted(dog_id)
        return len(gone)

    async def give_cover(self, dog_id: str) -> bool:
        """Gives a dog none of whose entries is its cover (what `dogsearch check --drop-missing` left before
        drop_photos: the API reads no such dog) one, as drop_photos does: a photo that stays (the fields are on each
        entry), dated by the dog's first photo stored, as the layout's upgrade dates a dog (the cover's date went
        with it). False: it has a cover again, or no entry (since the caller looked)."""
        async with self.ingest.dog_locks.hold([dog_id]):
            entries = await self._entries({"dog_id": dog_id})
            if not entries or any(Photo.from_entry(e).cover for e in entries):
                return False
            first = min(entries, key=lambda e: (e["payload"].get("created_at", ""), e["id"]))
            await self._new_cover(dog_id, entries, first)
            return True

    async def _remove(self, dog_id: str, entries: list[dict[str, Any]], gone: list[dict[str, Any]]) -> None:
        """Removes `gone`, some but not all of the dog's `entries`."""
        removed = {e["id"] for e in gone}
        if cover := next((e for e in gone if Photo.from_entry(e).cover), None):
            # a new cover first: the dog is never without one, nor its place
            await self._new_cover(dog_id, [e for e in entries if e["id"] not in removed], cover)
        await self._delete_entries(gone)

    async def _new_cover(self, dog_id: str, kept: list[dict[str, Any]], dated_by: dict[str, Any]) -> None:
        """The first of `kept` (entries of the dog that stay) made its cover, with the place in the newest-first list
        of `dated_by` (the cover it replaces; else the entry whose photo dates the dog)."""
        created = dated_by["payload"].get("dog_created_at") or \
            dog_created_at(dog_id, dated_by["payload"].get("created_at", ""))
        await self.index.set_payload([kept[0]["id"]], {"cover": True, "dog_created_at": created})

    async def mark_photo(self, dog_id: str, photo: str, box: Box) -> Dog:
        """Where the dog is in one of its photos, as its user marks it (the detector boxed another dog, or part of
        this one): that photo's entry re-embedded from `box`, in the photo's pixels."""
        async with self.ingest.dog_locks.hold([dog_id]):
            await self.dog(dog_id)
            entry = await self._photo_entry(dog_id, photo)
            await self.ingest.remark(entry, await self.photo(Dog.from_entry(entry)), box)
            return await self.dog(dog_id)

    async def dog_in(self, dog_id: str, photo: str | None = None) -> Dog:
        """The dog as one of its photos shows it (that photo, its box there); None: its cover. DogNotFound before
        PhotoNotFound."""
        dog = await self.dog(dog_id)
        return dog if photo is None else Dog.from_entry(await self._photo_entry(dog_id, photo))

    async def _photo_entry(self, dog_id: str, photo: str) -> dict[str, Any]:
        """The entry of a dog in one of its photos; PhotoNotFound when that is no photo of it."""
        return await self._first({"dog_id": dog_id, "photo_id": photo},
                                 PhotoNotFound(f"dog {dog_id} has no photo {photo}"))

    async def _cover(self, dog_id: str) -> dict[str, Any]:
        return await self._first({"dog_id": dog_id, "cover": True}, DogNotFound(f"no dog {dog_id}"))

    async def _first(self, filter: Filter, missing: Exception) -> dict[str, Any]:
        """One entry the filter matches; `missing` raised when none does (or nothing is stored yet)."""
        try:
            found = (await self.index.scroll(1, None, filter))["points"]
        except CollectionMissing:
            found = []
        if not found:
            raise missing
        return found[0]

    async def _delete_entries(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:  # first the vectors, so no search returns a dog whose photo is gone
            await self.index.delete(entry["id"])
        await self._drop_files(entries)

    async def _drop_files(self, entries: list[dict[str, Any]]) -> None:
        """Deletes the files of the photos of deleted `entries` that no entry shows any more."""
        for photo, fmt in {(p["payload"]["photo_id"], p["payload"]["format"]) for p in entries}:
            # Under the photo's lock: an upload of the same photo either stored its entry before (the file stays)
            # or finds none after and stores the whole dog again, file and entry.
            async with self.ingest.locks.hold([photo]):
                if not await self.index.count({"photo_id": photo}):  # no other dog is in it
                    await asyncio.to_thread(self.photos.delete, photo, fmt)

    async def search(self, images: Sequence[bytes], k: int, filter: Filter | None = None, dog: int = 0,
                     rule: Rule = "mean", box: Box | None = None) -> Search:
        """The k dogs most like the `dog`-th dog (0: the largest) of the photos, several photos of one dog combined
        by `rule` (gallery/multiquery.py), best first. The photos are decoded once, by the embedder: here only their
        headers are checked against this gallery's limits. NoDogFound when one shows no dog, NoSuchDog when
        fewer. `box`: where the dog is in a single photo, marked by the user (where the detector missed it or
        boxed another): that dog, whatever the detector would find."""
        check_dog(dog, box)
        if not images:
            raise InvalidInput("a search needs a photo")
        if box is not None and len(images) > 1:
            raise BadBox(f"a box marks the dog of one photo: {len(images)} photos were sent with it")
        for image in images:
            await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs(list(images), whole_if_none=not self.require_dog, seems=False,
                                                   boxes=None if box is None else [box])
        await self.space.check(embedding.model)
        picked = [_pick(photo, dog, n, len(images)) for n, photo in enumerate(embedding.photos)]
        matches = await self._nearest(np.stack([found.vector for found in picked]), k, filter, rule)
        searched = {sha256_hex(image): found for image, found in zip(images, picked, strict=True)}
        matches = sorted((_exact(m, searched) for m in matches), key=lambda m: not m.exact)  # first of its equals
        return Search(matches, embedding.photos[0], dog, embedding.photos)

    async def _nearest(self, vectors: np.ndarray, k: int, filter: Filter | None, rule: Rule) -> list[Match]:
        """The k nearest dogs, as readers are shown them (`shown`): what a search and "more like this" answer."""
        return await self._shown_matches(
            await nearest_dogs(self.index, vectors, k, filter, rule, self.expansion, await self.judged_part()))

    async def judged_part(self) -> JudgedPart | None:
        """The part of this gallery's vectors that same-dog verdicts read (None: the whole vector, or the model is
        not known yet: a "more like this" asks the embedder first, where it can)."""
        if self.judged_by is None or self.space.model is None:
            return None
        return await self.judged_by.judged_part(self.space.model)

    async def dog_vectors(self, dog_id: str) -> tuple[str, list[list[float]]]:
        """The vectors of a stored dog's photos, and their model."""
        await self.dog(dog_id)
        entries = await self._entries({"dog_id": dog_id})
        points = await self.index.lookup([e["id"] for e in entries], with_vector=True)
        return await self.space.ensure(), [p["vector"] for p in points.values() if p.get("vector") is not None]

    async def photo_vectors(self, images: list[bytes]) -> tuple[str, list[list[float]]]:
        """The vector of each photo's largest dog, and their model (NoDogFound for a photo without one)."""
        for image in images:
            await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs(images, whole_if_none=not self.require_dog, seems=False)
        await self.space.check(embedding.model)
        return embedding.model, [[float(v) for v in pick(photo, 0).vector] for photo in embedding.photos]

    async def detect(self, image: bytes, box: Box | None = None) -> PhotoDogs:
        """The dogs of a photo as a search or an add would see them (boxes, breed guesses; no vectors), and what the
        photo seems to show; with `box`, the dog a user marked there (its breed guesses). No dog is an empty list
        here, not an error."""
        await asyncio.to_thread(self.limits.probe, image)
        embedding = await self.embedder.embed_dogs([image], whole_if_none=not self.require_dog, vectors=False,
                                                   boxes=None if box is None else [box])
        return embedding.photos[0]

    async def dog_boxes(self, image: bytes) -> list[tuple[Box, float | None]]:
        """The boxes of the photo's dogs as a search finds them, each with its detector's score (the whole photo for
        a dog it takes whole, scored None), largest first, for what poses them elsewhere; NoDogFound, saying what the
        photo seems to show, where a search would refuse it for want of a dog. The photo's header is the caller's to
        check."""
        embedding = await self.embedder.embed_dogs([image], whole_if_none=not self.require_dog, vectors=False,
                                                   seems=False)
        pick(embedding.photos[0], 0)
        return [(dog.box, dog.score) for dog in embedding.photos[0].dogs]

    async def preview(self, image: bytes, side: int = PREVIEW_PX) -> bytes:
        """The photo as a JPEG any browser shows (a HEIC does not show outside Safari): upright, its longer side at
        most `side`, without metadata. Decoded under the upload limits, as a search's photo is."""
        return await asyncio.to_thread(lambda: thumbnail_jpeg(self.limits.decode(image, min_side=side).image, side))

    async def taken(self, image: bytes) -> PhotoReport:
        """When and where the photo says it was taken (its EXIF), as a report's fields, for a client to offer them
        before it adds the photo. Only the header is read."""
        return await asyncio.to_thread(self.ingest.read_report, image)

    async def update(self, dog_id: str, fields: Mapping[str, Any]) -> Dog:
        """Sets a dog's user fields (checked: fields.user_fields) on every entry of the dog."""
        await self.dog(dog_id)
        if fields:
            entries = await self._entries({"dog_id": dog_id})
            await self.index.set_payload([e["id"] for e in entries], dict(fields) | match_keys(fields))
        return await self.dog(dog_id)

    async def similar(self, dog_id: str, k: int, filter: Filter | None = None, rule: Rule = "mean",
                      most_photos: int = 5) -> list[Match]:
        """More like this: the k dogs nearest to a stored one, which is left out; its photos (the cover and the
        next, up to `most_photos`) combined by `rule` as a search's query photos are."""
        await self.dog(dog_id)
        entries = sorted(await self._entries({"dog_id": dog_id}), key=lambda e: not e["payload"].get("cover"))
        points = await self.index.lookup([e["id"] for e in entries[:most_photos]], with_vector=True)
        vectors = np.array([p["vector"] for p in points.values() if p.get("vector") is not None], dtype=np.float32)
        if not len(vectors):  # its entries went between the two reads: deleted
            raise DogNotFound(f"no dog {dog_id}")
        return await self._nearest(vectors, k, {**(filter or {}), "$not": {"dog_id": dog_id}}, rule)

    async def image(self, dog: Dog, size: Literal["original", "thumbnail"] = "original",
                    photo: str | None = None) -> Path:
        """The file of a dog's photo (`photo`: one of its photos by id; default: the one it was read from, its
        cover); its thumbnail is made the first time it is asked for."""
        fmt = dog.format
        if photo is not None and photo != dog.photo_id:
            fmt = (await self._photo_entry(dog.id, photo))["payload"]["format"]
        photo = photo or dog.photo_id
        if size == "thumbnail":
            try:
                path = await asyncio.to_thread(self.photos.thumbnail, photo, fmt)
            except ImageRejected as exc:  # the stored original was checked when it came in: damaged since
                raise PhotoDamaged(f"cannot make the thumbnail of dog {dog.id}: {exc.reason}") from exc
        else:  # without the metadata that tells where it was taken and by whom (core/exif.py)
            try:
                path = await asyncio.to_thread(self.photos.public, photo, fmt)
            except ImageRejected as exc:
                raise PhotoDamaged(f"cannot serve the photo of dog {dog.id}: {exc.reason}") from exc
        if path is None or not path.exists():
            raise PhotoMissing(f"photo of dog {dog.id} is missing from the photo store")
        return path

    async def photo(self, dog: Dog) -> bytes:
        """The stored photo's bytes (the original, for the services behind this one)."""
        try:
            return await asyncio.to_thread(self.photos.original(dog.photo_id, dog.format).read_bytes)
        except FileNotFoundError:
            raise PhotoMissing(f"photo of dog {dog.id} is missing from the photo store") from None

    async def _entries(self, filter: Filter) -> list[dict[str, Any]]:
        entries, offset = [], None
        while True:
            page = await self.index.scroll(_PAGE, offset, filter)
            entries += page["points"]
            offset = page["next"]
            if offset is None:
                return entries


def _exact(match: Match, searched: Mapping[str, FoundDog]) -> Match:
    """`match`, marked `exact` when its entry is the searched dog of a query photo ({sha256: its dog}) stored: the same
    bytes, and the dog at the same place (the same box, to the detector's rounding; or both the whole photo). A
    photo with two dogs side by side, or one dog boxed twice, has look-alikes that no lead tells apart from it."""
    found = searched.get(match.dog.payload.get("sha256", ""))
    if found is None:
        return match
    box = match.dog.payload.get("box")
    same = found.whole_photo if box is None else not found.whole_photo and iou(tuple(box), found.box) >= 0.9
    return replace(match, exact=True) if same else match


def _pick(photo: PhotoDogs, dog: int, n: int, of: int) -> FoundDog:
    """pick, saying which photo of several it was about."""
    try:
        return pick(photo, dog)
    except (NoDogFound, NoSuchDog) as exc:
        if of == 1:
            raise
        reason = f"photo {n + 1} of {of}: {exc.reason}"
        if isinstance(exc, NoDogFound):
            raise NoDogFound(reason, seems=exc.seems, photo=n) from None
        raise NoSuchDog(reason) from None


async def nearest_dogs(index: Index, vectors: np.ndarray, k: int, filter: Filter | None, rule: Rule,
                       expansion: Expansion | None = None, judged: JudgedPart | None = None) -> list[Match]:
    """The k dogs nearest to photos of one dog (their vectors), combined by `rule`: a search's ranking (the watches
    judge a new dog against the same). With `expansion`, in the order of the expanded query (gallery/expansion.py),
    each dog still with the plain query's score and best photo. With `judged`, each dog also gets the score of
    that part of the vectors, which its same-dog verdict reads (core/judged.py); a part that re-ranks takes its
    first `depth` dogs and ranks them again, each dog's score then the re-ranking's (with `expansion`, ranked by
    the expanded query's re-ranking, scored by the plain query's)."""
    rerank = None if judged is None else judged.rerank
    n = k if rerank is None else max(k, rerank.depth)
    expanded = None
    if expansion is None or not expansion.on:
        matches = [Match(Dog.from_entry(hit), hit["score"]) for hit in await _ranked(index, vectors, n, filter, rule)]
    else:
        queries = [mean_query(vectors)[0]] if rule == "mean" else list(vectors)
        expanded = np.stack(await asyncio.gather(*(_expanded(index, q, filter, expansion) for q in queries)))
        order = [Dog.from_entry(hit).id for hit in await _ranked(index, expanded, n, filter, rule)]
        matches = await _rescored(index, vectors, order, filter, rule)
    if judged is None or not matches:
        return matches
    ids = [m.dog.id for m in matches]

    async def cosines(queries: np.ndarray, scale: float) -> dict[str, float]:
        return {m.dog.id: m.score * scale for m in await _rescored(index, queries, ids, filter, rule)}

    asked = [cosines(judged.queries(vectors), judged.scale)]
    if rerank is not None:  # the rest's scores too, at the same time: neither query needs another's answer
        asked.append(cosines(judged.rest_queries(vectors), judged.rest_scale))
        if expanded is not None:  # and the expanded query's, which order the dogs
            asked += [cosines(judged.queries(expanded), judged.scale),
                      cosines(judged.rest_queries(expanded), judged.rest_scale)]
    parts, *others = await asyncio.gather(*asked)
    matches = [replace(m, judged=parts[m.dog.id]) for m in matches if m.dog.id in parts]
    if rerank is None:
        return matches
    kept = [m for m in matches if all(m.dog.id in scores for scores in others)]

    def reranked(part: dict[str, float], rest: dict[str, float]) -> np.ndarray:
        return rerank.scores(np.array([part[m.dog.id] for m in kept]), np.array([rest[m.dog.id] for m in kept]))

    shown = reranked(parts, others[0])
    by = shown if expanded is None else reranked(*others[1:])
    return [replace(kept[i], score=float(shown[i])) for i in np.argsort(-by, kind="stable")[:k]]  # ties: as ranked


async def _rescored(index: Index, vectors: np.ndarray, order: list[str], filter: Filter | None,
                    rule: Rule) -> list[Match]:
    """The dogs `order` names, in that order, each scored (and its best photo chosen) by `vectors`; one deleted
    meanwhile is left out."""
    if not order:
        return []
    found = {(dog := Dog.from_entry(hit)).id: Match(dog, hit["score"])
             for hit in await _ranked(index, vectors, len(order), {**(filter or {}), "dog_id": order}, rule)}
    return [found[dog] for dog in order if dog in found]


async def _expanded(index: Index, query: np.ndarray, filter: Filter | None, expansion: Expansion) -> np.ndarray:
    """The query moved towards its nearest entries (those the search's filter lets through)."""
    hits = await index.query(query, expansion.neighbours, filter)
    points = await index.lookup([hit["id"] for hit in hits], with_vector=True)
    hits = [hit for hit in hits if points.get(hit["id"], {}).get("vector") is not None]
    if not hits:
        return np.asarray(query, np.float32)
    return expand(query, np.array([points[hit["id"]]["vector"] for hit in hits], np.float32),
                  np.array([hit["score"] for hit in hits], np.float32), expansion.power)


async def _ranked(index: Index, vectors: np.ndarray, k: int, filter: Filter | None, rule: Rule) -> list[dict]:
    """The best entry of each of the k dogs nearest to the vectors, by `rule`, its score the rule's."""
    if rule == "max":
        return await _best_per_dog(lambda n, f: _nearest_to_any(index, vectors, n, f), k, filter)
    unit, length = mean_query(vectors)
    return [{**hit, "score": hit["score"] * length}
            for hit in await _best_per_dog(lambda n, f: index.query(unit, n, f), k, filter)]


async def _nearest_to_any(index: Index, vectors: np.ndarray, n: int, filter: Filter | None) -> list[dict[str, Any]]:
    """The n entries nearest to any of the vectors, each by its best cosine: every entry of the true n is among the n
    nearest of the vector it is nearest to."""
    best: dict[str, dict[str, Any]] = {}
    for hits in await asyncio.gather(*(index.query(v, n, filter) for v in vectors)):
        for hit in hits:
            if hit["id"] not in best or hit["score"] > best[hit["id"]]["score"]:
                best[hit["id"]] = hit
    return sorted(best.values(), key=lambda h: -h["score"])[:n]


async def _best_per_dog(nearest: Callable[[int, Filter | None], Awaitable[list[dict[str, Any]]]], k: int,
                        filter: Filter | None = None) -> list[dict[str, Any]]:
    """The best entries of the k best dogs, each dog once, from nearest(n, filter), the n nearest entries. Asks for
    2k entries; while a dog's other photos crowded other dogs out, asks again for the dogs not found yet (the filter
    leaves out those found), so the rounds fetch no entry twice and a dog with many photos never hides another.
    Exact: a dog first seen in a later round is below every dog of the earlier ones (scripts/dog-ranking.py)."""
    best: dict[str, dict[str, Any]] = {}
    while True:
        want = min(2 * (k - len(best)), _MOST_ENTRIES)  # some to spare: a dog rarely has one photo near the query
        hits = await nearest(want, _without_dogs(filter, list(best)))
        for hit in hits:
            best.setdefault(Dog.from_entry(hit).id, hit)  # hits come best first
        if len(best) >= k or len(hits) < want:
            return list(best.values())[:k]


def _without_dogs(filter: Filter | None, dogs: list[str]) -> Filter | None:
    """`filter`, leaving out every entry of `dogs` too (beside what its own $not leaves out)."""
    if not dogs:
        return filter
    base = dict(filter or {})
    out = dict(base.get("$not") or {})
    left_out = out.get("dog_id", [])
    out["dog_id"] = [*([left_out] if isinstance(left_out, str) else left_out), *dogs]
    return {**base, "$not": out}


def _is_id(cursor: str) -> bool:
    try:
        uuid.UUID(cursor)
    except ValueError:
        return False
    return True
