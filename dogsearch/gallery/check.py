"""`dogsearch check`: does every entry have its photo, every photo file an entry, every vector the collection's
model? Through the Index contract, so it runs on either engine, in-process on a data folder or against a running
search service; `repair` fixes what can be fixed without losing anything.

What is repaired and what is only reported:
- a photo file no entry refers to (a crash between the photo's write and its vector's, an upload whose outcome was
  unknown): removed, once it is older than `grace_s` (an upload in flight writes its file a moment before its entry)
  and a second look finds no entry for it;
- an entry whose photo is missing: reported as needing its photo uploaded again (the same bytes bring it back: ids
  are content hashes), and removed only with `drop_missing`: the entry holds the dog's fields (name, owner, report),
  which nothing else keeps;
- an entry whose vector is another model's: reported; `dogsearch reindex` or a re-upload makes it again."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from dogsearch.gallery.contracts import Index
from dogsearch.gallery.photos import PhotoStore
from dogsearch.search.contract import CollectionMissing

_PAGE = 256


@dataclass
class GalleryCheck:
    model: str | None = None  # the collection's
    entries: int = 0
    files: int = 0
    missing_photos: list[dict[str, Any]] = field(default_factory=list)  # {"id", "dog_id", "photo_id", "format"}
    orphan_files: list[str] = field(default_factory=list)  # relative to the photo store
    other_model: list[dict[str, Any]] = field(default_factory=list)  # {"id", "model"}
    removed_files: int = 0
    dropped_entries: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def check_gallery(index: Index, photos: PhotoStore, model: str | None, *, repair: bool = False,
                        drop_missing: bool = False, grace_s: float = 600.0,
                        progress: Callable[[str, int], None] | None = None) -> GalleryCheck:
    """`model`: the collection's (None: no collection yet). `progress("entries" | "files", n)`: after each page of
    entries and each 100 files."""
    report = GalleryCheck(model=model)
    shown = await _scan_entries(index, photos, report, progress)
    await asyncio.to_thread(_scan_files, photos, shown, report, grace_s, progress)
    if repair:
        await _remove_orphans(index, photos, report, grace_s)
        if drop_missing:
            await _drop_missing(index, photos, report)
    return report


async def _scan_entries(index: Index, photos: PhotoStore, report: GalleryCheck,
                        progress: Callable[[str, int], None] | None) -> set[str]:
    """Walks every entry; returns the ids of the photos they show."""
    shown: set[str] = set()
    offset = None
    while True:
        try:
            page = await index.scroll(_PAGE, offset, None)
        except CollectionMissing:  # nothing stored yet
            return shown
        report.missing_photos += await asyncio.to_thread(_missing, photos, page["points"])  # a page per thread hop
        for point in page["points"]:
            payload = point["payload"]
            shown.add(payload.get("photo_id", point["id"]))
            if report.model and payload.get("model") and payload["model"] != report.model:
                report.other_model.append({"id": point["id"], "model": payload["model"]})
        report.entries += len(page["points"])
        if progress:
            progress("entries", len(page["points"]))
        offset = page["next"]
        if offset is None:
            return shown


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


async def _drop_missing(index: Index, photos: PhotoStore, report: GalleryCheck) -> None:
    for entry in report.missing_photos:
        fmt = entry["format"]
        if fmt and await asyncio.to_thread(photos.original(entry["photo_id"], fmt).exists):
            continue  # uploaded again since the scan
        await index.delete(entry["id"])
        report.dropped_entries += 1
