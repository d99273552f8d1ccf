"""Photos from a folder (labels from sub-folder names or a CSV) into the gallery: one upload a photo
(`index_items`, used by evaluations), and the helpers of `dogsearch index`, which runs a bulk job."""
from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dogsearch.core.errors import DogsearchError
from dogsearch.services.gateway.client import GatewayClient

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Item:
    path: Path
    fields: dict[str, str]


@dataclass
class IndexReport:
    added: int = 0
    already_stored: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    breeds: Counter = field(default_factory=Counter)


def items_from_folders(root: Path) -> list[Item]:
    """DIR/<breed>/<photo>: the sub-folder name is the breed; photos directly in DIR get none."""
    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        rel = path.relative_to(root)
        items.append(Item(path, {"breed": rel.parts[0]} if len(rel.parts) > 1 else {}))
    return items


def items_from_csv(root: Path, csv_path: Path) -> list[Item]:
    """A CSV with a `path` column (relative to DIR); every other column becomes a field (breed, name, ...)."""
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: needs a 'path' column, has {reader.fieldnames}")
        return [Item(root / row.pop("path"), {k: v for k, v in row.items() if v}) for row in reader]


async def index_items(
    client: GatewayClient, items: list[Item], concurrency: int = 4, extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> IndexReport:
    report = IndexReport()
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(items), unit="photo", desc="indexing", disable=not progress)

    async def one(item: Item) -> None:
        async with limit:
            try:
                data = await asyncio.to_thread(item.path.read_bytes)
                status, _ = await client.add_dog(data, filename=item.path.name, **(extra or {}), **item.fields)
            except (DogsearchError, OSError) as exc:
                report.failed.append((str(item.path), str(exc)))
            else:
                if status == 201:
                    report.added += 1
                else:
                    report.already_stored += 1
                if "breed" in item.fields:
                    report.breeds[item.fields["breed"]] += 1
            bar.update()
            bar.set_postfix(added=report.added, failed=len(report.failed), refresh=False)

    try:
        await asyncio.gather(*(one(item) for item in items))
    finally:
        bar.close()
    return report


# --- `dogsearch index` through bulk jobs ---------------------------------------------------------------------------

def zip_folder(root: Path, dest: Path) -> int:
    """DIR as a zip for an upload job: photos (and labels.csv) only, stored uncompressed (photos don't shrink)."""
    import zipfile

    count = 0
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and (path.suffix.lower() in IMAGE_SUFFIXES or path.name in ("labels.csv",)):
                zf.write(path, path.relative_to(root).as_posix())
                count += 1
    return count


async def follow_job(get: Callable[[], Awaitable[dict]], progress: bool = True, every_s: float = 0.25) -> dict:
    """Polls a job until it is over, with a progress bar from its counts."""
    bar = tqdm(total=None, unit="photo", desc="indexing", disable=not progress)
    try:
        while True:
            job = await get()
            if job["total"] and bar.total != job["total"]:
                bar.total = job["total"]
            bar.n = job["indexed"] + job["duplicates"] + job["failed"]
            bar.set_postfix(indexed=job["indexed"], duplicates=job["duplicates"], failed=job["failed"], refresh=False)
            bar.refresh()
            if job["state"] not in ("queued", "running"):
                return job
            await asyncio.sleep(every_s)
    finally:
        bar.close()


def job_summary(job: dict) -> str:
    return (f"indexed {job['indexed']}, duplicates {job['duplicates']} (already stored {job['already_stored']}), "
            f"near duplicates {job['near_duplicates']}, failed {job['failed']}")
