"""`dogsearch check`: does every entry have its photo, every photo file an entry, every vector the collection's
model? Through the Index contract, so it runs on either engine, in-process on a data folder or against a running
search service; `repair` fixes what can be fixed without losing anything.

What is repaired and what is only reported:
- a photo file no entry refers to (a crash between the photo's write and its vector's, an upload whose outcome was
  unknown): removed, once it is older than `grace_s` (an upload in flight writes its file a moment before its entry)
  and a second look finds no entry for it;
- an entry whose photo is missing: reported as needing its photo uploaded again (the same bytes bring it back: ids
  are content hashes), and removed only with `drop_missing`: the entry holds the dog's fields (name, owner, report),
  which nothing else keeps. Removed as the API's deletes of those photos would (Gallery.drop_photos): a dog that
  keeps another photo keeps a cover, its place and its fields; one that keeps none is deleted;
- a dog none of whose entries is its cover (an older `drop_missing` deleted the cover's entry alone): the API reads
  no such dog. Repaired as Gallery.drop_photos would have left it: a photo that stays made its cover (give_cover);
- entries an older release stored (gallery/layout.py: no `dog_id`, which the API does not read, or a dog not dated,
  which no list shows), left until a gateway starts: repaired by the same upgrade the gateway runs at its start
  (idempotent and lock-free, as the gateway replicas run it side by side), before what reads their dogs by id;
- an entry whose vector is another model's: reported; `dogsearch reindex` or a re-upload makes it again;
- a photo without its perceptual hash (stored before every new photo got one), or whose hash is not filed where new
  photos' look-alikes are found (the job store: lost with a Redis flushed or a jobs/ folder removed): such a photo is
  never found as a copy. Repaired: the photo is hashed from its file, the hash set in its entries, and filed (with
  `hashes`; without, not checked);
- a photo that copies one stored before it (within NEAR_DISTANCE bits) without saying so: photos stored before every
  new photo was looked at, or hashed only now, and copies whose mark names a dog deleted since (which readers are not
  shown) while another look-alike is stored before them (a delete re-points them: Ingestor.repoint_copies; not one
  killed on its way, or made by a version before it). Repaired as a new photo would have been marked:
  `near_duplicate_of` names the dog of the closest photo stored before it (`created_at`, then photo id, the order
  the gallery's looks use); a mark naming a stored dog stays."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dogsearch.core import phash as ph
from dogsearch.core.images import ImageRejected
from dogsearch.gallery.contracts import Hashes, Index
from dogsearch.gallery.gallery import Gallery
from dogsearch.gallery.ingest import LookAlike, copied_dog, stored_order
from dogsearch.gallery.layout import undated, upgrade
from dogsearch.gallery.photos import PhotoStore
from dogsearch.search.contract import CollectionMissing

_PAGE = 256
_HASH_SIDE = 256  # decoded at least this big for its hash: a 9x8 dHash barely moves with the size (0-1 bits)


@dataclass
class GalleryCheck:
    model: str | None = None  # the collection's
    entries: int = 0
    files: int = 0
    missing_photos: list[dict[str, Any]] = field(default_factory=list)  # {"id", "dog_id", "photo_id", "format"}
    orphan_files: list[str] = field(default_factory=list)  # relative to the photo store
    other_model: list[dict[str, Any]] = field(default_factory=list)  # {"id", "model"}
    without_cover: list[str] = field(default_factory=list)  # dogs none of whose entries is the cover
    covers_given: int = 0
    old_layout: int = 0  # dogs an older release stored that the layout's upgrade has not upgraded (layout.undated)
    upgraded: int = 0  # of them
    removed_files: int = 0
    dropped_entries: int = 0
    hashes_checked: bool = False  # False: no hash store was given
    unhashed: int = 0  # photos without a perceptual hash
    unfiled: int = 0  # photos whose hash is not filed
    hashed: int = 0  # repaired: their hash set in their entries and filed
    filed: int = 0  # repaired: filed again
    unhashable: list[dict[str, str]] = field(default_factory=list)  # {"photo_id", "reason"}: a file that won't decode
    unmarked_copies: int = 0  # photos that copy one stored before them and do not say so (or name a deleted dog)
    copies: list[dict[str, str]] = field(default_factory=list)  # {"photo_id", "of_dog"} of each of them
    marked: int = 0  # repaired: their entries name the dog whose photo they copy

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _PhotoHashes:
    """What the walk learnt of the photos' hashes (each photo's entries, its hash where they hold one) and of the
    dogs' covers."""

    entries: dict[str, list[str]] = field(default_factory=dict)  # photo id: its entries, in the walk's order
    hashes: dict[str, int] = field(default_factory=dict)
    formats: dict[str, str | None] = field(default_factory=dict)
    unhashed: set[str] = field(default_factory=set)  # photos with an entry that holds no hash
    order: dict[str, tuple[str, str]] = field(default_factory=dict)  # photo id: where it stands in the stored order
    marks: dict[str, str] = field(default_factory=dict)  # photo id: the dog whose photo it copies, as its entries say
    entry_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # entry id: (its photo, its dog)
    dogs: set[str] = field(default_factory=set)  # the dogs the entries name
    covered: set[str] = field(default_factory=set)  # those of them with a cover among the entries

    def add(self, point: dict[str, Any]) -> None:
        payload = point["payload"]
        photo = payload.get("photo_id", point["id"])
        self.entries.setdefault(photo, []).append(point["id"])
        self.entry_of[point["id"]] = (photo, payload.get("dog_id", point["id"]))
        self.formats.setdefault(photo, payload.get("format"))
        self.order.setdefault(photo, stored_order({"photo_id": photo} | payload))
        if "near_duplicate_of" in payload:
            self.marks.setdefault(photo, payload["near_duplicate_of"])
        if payload.get("phash"):
            self.hashes.setdefault(photo, int(payload["phash"], 16))
        else:
            self.unhashed.add(photo)
        if payload.get("dog_id") is not None:  # an entry of the old layout is its own dog's cover
            self.dogs.add(payload["dog_id"])
            if payload.get("cover"):
                self.covered.add(payload["dog_id"])

    def forget(self, photos: set[str]) -> None:
        """`photos` no longer stored (dropped): none to hash, file, mark, or find as a look-alike."""
        for photo in photos:
            for entry in self.entries.pop(photo, []):
                self.entry_of.pop(entry, None)
            for of_photo in (self.hashes, self.formats, self.order, self.marks):
                of_photo.pop(photo, None)
        self.unhashed -= photos


async def check_gallery(index: Index, photos: PhotoStore, model: str | None, *, repair: bool = False,
                        gallery: Gallery | None = None, drop_missing: bool = False, grace_s: float = 600.0,
                        hashes: Hashes | None = None,
                        progress: Callable[[str, int], None] | None = None) -> GalleryCheck:
    """`model`: the collection's (None: no collection yet). `gallery`: with `repair`, the gallery (on `index` and
    `photos`) that repairs dogs as the API would, taking turns with it: gives covers, and with `drop_missing`
    deletes the entries whose photo is missing (None: both only reported). `hashes`: where photos' hashes are filed
    (None: they are not checked). `progress("entries" | "files" | "hashes", n)`: after each page of entries, each
    100 files, each page of photos hashed."""
    report = GalleryCheck(model=model, hashes_checked=hashes is not None)
    seen = _PhotoHashes()
    await _scan_entries(index, photos, report, seen, progress)
    report.without_cover = await _without_cover(index, seen)
    report.old_layout = await undated(index)
    await asyncio.to_thread(_scan_files, photos, set(seen.entries), report, grace_s, progress)
    if repair:
        await _remove_orphans(index, photos, report, grace_s)
        if report.old_layout:  # first: the drops and covers below find a dog by its entries' dog_id
            await upgrade(index)
            report.upgraded = max(0, report.old_layout - await undated(index))
        if gallery is not None:
            if drop_missing:
                await _forget(index, seen, await _drop_missing(gallery, report))
            for dog in report.without_cover:  # after the drops: a dog they deleted needs none
                report.covers_given += await gallery.give_cover(dog)
    # after the drops: a photo dropped is none to hash or file (the next check would not count it)
    unfiled, copies = await asyncio.to_thread(_look_up, hashes, seen) if hashes is not None else ([], {})
    report.unhashed, report.unfiled = len(seen.unhashed), len(unfiled)
    if repair and hashes is not None:
        await _repair_hashes(index, photos, hashes, seen, unfiled, report, progress)
        if report.hashed or report.filed:  # photos hashed or filed only now are copies, or originals, too
            _, copies = await asyncio.to_thread(_look_up, hashes, seen)
    if hashes is not None:
        report.unmarked_copies = len(copies)
        report.copies = [{"photo_id": photo, "of_dog": dog} for photo, dog in copies.items()]
        if repair:
            for photo, of_dog in copies.items():
                await index.set_payload(seen.entries[photo], {"near_duplicate_of": of_dog})
                report.marked += 1
    return report


async def _scan_entries(index: Index, photos: PhotoStore, report: GalleryCheck, seen: _PhotoHashes,
                        progress: Callable[[str, int], None] | None) -> None:
    """Walks every entry, noting in `seen` the photos they show."""
    offset = None
    while True:
        try:
            page = await index.scroll(_PAGE, offset, None)
        except CollectionMissing:  # nothing stored yet
            return
        report.missing_photos += await asyncio.to_thread(_missing, photos, page["points"])  # a page per thread hop
        for point in page["points"]:
            payload = point["payload"]
            seen.add(point)
            if report.model and payload.get("model") and payload["model"] != report.model:
                report.other_model.append({"id": point["id"], "model": payload["model"]})
        report.entries += len(page["points"])
        if progress:
            progress("entries", len(page["points"]))
        offset = page["next"]
        if offset is None:
            return


async def _without_cover(index: Index, seen: _PhotoHashes) -> list[str]:
    """The dogs the walk found no cover of that still have none: a second look, as a cover moved by a delete during
    the walk (from an entry not walked yet to one walked already) is missed by it."""
    return [dog for dog in sorted(seen.dogs - seen.covered) if not await index.count({"dog_id": dog, "cover": True})]


def _missing(photos: PhotoStore, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries among `points` whose photo file is missing."""
    missing = []
    for point in points:
        payload = point["payload"]
        photo, fmt = payload.get("photo_id", point["id"]), payload.get("format")
        if not fmt or not photos.original(photo, fmt).exists():
            missing.append({"id": point["id"], "dog_id": payload.get("dog_id", point["id"]), "photo_id": photo,
                            "format": fmt})
    return missing


def _scan_files(photos: PhotoStore, shown: set[str], report: GalleryCheck, grace_s: float,
                progress: Callable[[str, int], None] | None) -> None:
    old_enough = time.time() - grace_s
    for path in photos.files():
        report.files += 1
        if progress and report.files % 100 == 0:
            progress("files", 100)
        if PhotoStore.photo_of(path) in shown:
            continue
        try:
            if path.stat().st_mtime > old_enough:  # an upload in flight: its entry comes a moment later
                continue
        except FileNotFoundError:
            continue
        report.orphan_files.append(str(path.relative_to(photos.root)))


async def _remove_orphans(index: Index, photos: PhotoStore, report: GalleryCheck, grace_s: float) -> None:
    for name in report.orphan_files:
        path = photos.root / name
        photo = PhotoStore.photo_of(path)
        # A second look: an entry stored since the scan, or a file written again since (an upload of the same
        # photo on a server running meanwhile), keeps it.
        if photo and await _shown(index, photo):
            continue
        if await asyncio.to_thread(_removed_if_older, path, time.time() - grace_s):
            report.removed_files += 1


async def _shown(index: Index, photo: str) -> bool:
    try:
        return bool(await index.count({"photo_id": photo}) or await index.lookup([photo]))
    except CollectionMissing:
        return False


def _removed_if_older(path, limit: float) -> bool:
    try:
        if path.stat().st_mtime > limit:
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


async def _drop_missing(gallery: Gallery, report: GalleryCheck) -> set[str]:
    """Drops the entries whose photo is still missing: the photos no entry shows now."""
    lost: dict[str, set[str]] = {}  # dog id: its photos lost
    for entry in report.missing_photos:
        fmt = entry["format"]
        if fmt and await asyncio.to_thread(gallery.photos.original(entry["photo_id"], fmt).exists):
            continue  # uploaded again since the scan
        lost.setdefault(entry["dog_id"], set()).add(entry["photo_id"])
    for dog, photos in lost.items():
        report.dropped_entries += await gallery.drop_photos(dog, photos)
    return {photo for photo in set().union(*lost.values()) if not await _shown(gallery.index, photo)}


async def _forget(index: Index, seen: _PhotoHashes, dropped: set[str]) -> None:
    """Forgets the `dropped` photos, and reads again the marks of the copies of the dogs that went with them: their
    deletes re-pointed those (Ingestor.repoint_copies)."""
    dogs = {dog for _, dog in seen.entry_of.values()}
    seen.forget(dropped)
    gone = dogs - {dog for _, dog in seen.entry_of.values()}
    copies = {seen.entries[photo][0]: photo for photo, dog in seen.marks.items() if dog in gone}
    for entry, point in (await index.lookup(list(copies)) if copies else {}).items():
        seen.marks[copies[entry]] = point["payload"]["near_duplicate_of"]


def _look_up(hashes: Hashes, seen: _PhotoHashes) -> tuple[list[str], dict[str, str]]:
    """Every hashed photo looked up in the filed hashes, a page of them a call: those none of whose entries is filed
    under its hash, and {photo id: the dog it copies} of those that are no stored dog's copy (unmarked, or marked a
    copy of a dog deleted since) with a look-alike among the photos stored before them: the closest one's dog."""
    dogs_of: dict[str, set[str]] = {}
    photos_of: dict[str, set[str]] = {}
    for photo, dog in seen.entry_of.values():
        dogs_of.setdefault(photo, set()).add(dog)
        photos_of.setdefault(dog, set()).add(photo)
    dogs = set().union(*dogs_of.values())
    photos = list(seen.hashes)
    unfiled, copies = [], {}
    marks = dict(seen.marks)  # and the marks this check makes, as it makes them
    for start in range(0, len(photos), _PAGE):
        page = photos[start:start + _PAGE]
        for photo, near in zip(page, hashes.near([seen.hashes[photo] for photo in page]), strict=True):
            if {entry for entry, value in near if value == seen.hashes[photo]}.isdisjoint(seen.entries[photo]):
                unfiled.append(photo)
            if seen.marks.get(photo) not in dogs and (
                    dog := _closest_earlier(photo, near, seen, dogs_of, marks, photos_of)):
                copies[photo] = marks[photo] = dog
    return unfiled, copies


def _leads_to(photo: str, dogs: set[str], marks: dict[str, str], photos_of: dict[str, set[str]]) -> bool:
    """Whether `photo`'s marks, followed (the dog it copies, that dog's photos' marks, ...), reach one of `dogs`: a
    photo marked a copy of it would close a loop of copies with no original (marks made before every look read one
    order: a batch's own look-alikes were ordered as listed)."""
    seen: set[str] = set()
    todo = [photo]
    while todo:
        if (p := todo.pop()) in seen:
            continue
        seen.add(p)
        if (dog := marks.get(p)) is None:
            continue
        if dog in dogs:
            return True
        todo.extend(photos_of.get(dog, ()))
    return False


async def _repair_hashes(index: Index, photos: PhotoStore, hashes: Hashes, seen: _PhotoHashes, unfiled: list[str],
                         report: GalleryCheck, progress: Callable[[str, int], None] | None) -> None:
    """Hashes the photos without one from their files and sets it in their entries, then files every photo's hash
    that was not (under its first entry, as a new photo's is)."""
    missing = {entry["photo_id"] for entry in report.missing_photos}  # no file to hash (maybe no entry now)
    todo = sorted(seen.unhashed - missing)
    for start in range(0, len(todo), _PAGE):
        page = todo[start:start + _PAGE]
        known = {photo: seen.hashes[photo] for photo in page if photo in seen.hashes}  # another of its entries'
        made = await asyncio.to_thread(_hash_files, photos, [(p, seen.formats[p]) for p in page if p not in known],
                                       report)
        for photo, value in (known | made).items():
            await index.set_payload(seen.entries[photo], {"phash": ph.to_hex(value)})
        seen.hashes |= made
        if made:  # a known hash is filed with the unfiled ones, if it is not
            await asyncio.to_thread(hashes.add_phashes, [(seen.entries[photo][0], made[photo]) for photo in made])
        report.hashed += len(known) + len(made)
        if progress:
            progress("hashes", len(page))
    if unfiled:
        await asyncio.to_thread(hashes.add_phashes, [(seen.entries[photo][0], seen.hashes[photo]) for photo in unfiled])
        report.filed += len(unfiled)


def _closest_earlier(photo: str, near: list[tuple[str, int]], seen: _PhotoHashes, dogs_of: dict[str, set[str]],
                     marks: dict[str, str], photos_of: dict[str, set[str]]) -> str | None:
    """The dog `photo` copies (ingest.copied_dog) by its look-alikes among `near` (filed hashes), but none whose
    marks lead back to it (_leads_to). Only the walk's entries count: a photo deleted since its hash was filed is
    no look-alike."""
    alike = []
    for entry, value in near:
        if entry not in seen.entry_of:  # deleted since its hash was filed
            continue
        other, dog = seen.entry_of[entry]
        if other != photo and (d := ph.distance(seen.hashes[photo], value)) <= ph.NEAR_DISTANCE \
                and not _leads_to(other, dogs_of[photo], marks, photos_of):
            alike.append(LookAlike(d, seen.order[other], dog, seen.marks.get(other)))
    return copied_dog(seen.order[photo], dogs_of[photo], alike)


def _hash_files(photos: PhotoStore, todo: list[tuple[str, str | None]], report: GalleryCheck) -> dict[str, int]:
    """{photo id: its hash} of those of `todo` ((photo id, format)) whose file decodes; a damaged one is listed in
    the report."""
    made = {}
    for photo, fmt in todo:
        try:
            made[photo] = ph.dhash(photos.decode_original(photo, fmt, min_side=_HASH_SIDE))
        except FileNotFoundError:  # removed since the walk
            continue
        except ImageRejected as exc:
            report.unhashable.append({"photo_id": photo, "reason": exc.reason})
    return made
