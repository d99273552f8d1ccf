"""What a job indexes: the photos of a folder, or the rows of a CSV/JSONL manifest, or an uploaded zip.

Everything here checks untrusted input (paths from an API call, manifests, archives) and raises JobInputError
with the reason (of the kind the API answers with its 4xx)."""
from __future__ import annotations

import csv
import json
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dogsearch.core.errors import Forbidden, InvalidInput, NotFound, TooLarge, UnsupportedMedia
from dogsearch.core.images import PHOTO_SUFFIXES
from dogsearch.gallery.fields import InvalidFields, user_fields

MANIFEST_SUFFIXES = {".csv", ".jsonl"}


class JobInputError(InvalidInput):
    """A job's source or fields cannot be used as given."""


class SourceForbidden(Forbidden, JobInputError):
    """Outside the folders this server (or this job) may read, or server folders switched off."""


class SourceNotFound(NotFound, JobInputError):
    """The folder or manifest does not exist."""


class ArchiveTooLarge(TooLarge, JobInputError):
    """An archive with too many files, or one that unpacks beyond the limits."""


class NotAnArchive(UnsupportedMedia, JobInputError):
    """An upload that is not a zip."""


@dataclass(frozen=True)
class Item:
    file: str  # as the user knows it: relative to the job's folder (or as written in the manifest)
    path: str  # absolute path to read
    fields: dict[str, Any]


def check_fields(fields: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return user_fields(fields)
    except InvalidFields as exc:
        raise JobInputError(f"{where}: {exc.reason}") from exc


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_source(path: str, labels: str | None, roots: list[Path]) -> tuple[Path, Path | None]:
    """(folder, manifest or None) for a job's `path`, checked against the allowed roots."""
    if not roots:
        raise SourceForbidden("indexing server folders is switched off: set DOGSEARCH_JOBS_ALLOWED_ROOTS, "
                            "or upload a zip")
    raw = Path(path)
    if not raw.is_absolute():
        raise JobInputError(f"path must be absolute, got {path!r}")
    try:
        resolved = raw.resolve()
    except (OSError, ValueError) as exc:  # a NUL byte, a symlink loop
        raise JobInputError(f"unusable path {path!r}: {exc}") from exc
    if not inside(resolved, roots):
        raise SourceForbidden(f"{path} is outside the folders this server may index")
    if not resolved.exists():
        raise SourceNotFound(f"{path} does not exist")
    if resolved.is_dir():
        if labels == "csv":
            manifest = resolved / "labels.csv"
            if not manifest.is_file():
                raise JobInputError(f"labels 'csv' needs {manifest}")
            return resolved, manifest
        return resolved, None
    if resolved.suffix.lower() not in MANIFEST_SUFFIXES:
        raise JobInputError(f"{path}: a folder, a .csv or a .jsonl manifest, please")
    return resolved.parent, resolved


def list_items(folder: Path, manifest: Path | None, labels: str | None, payload: dict[str, Any],
               roots: list[Path]) -> list[Item]:
    if manifest is not None:
        return _manifest_items(folder, manifest, payload, roots)
    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES):
        rel = path.relative_to(folder)
        fields = dict(payload)
        if labels != "none" and len(rel.parts) > 1:
            fields["breed"] = rel.parts[0]
        items.append(Item(rel.as_posix(), str(path), fields))
    return items


def _manifest_items(folder: Path, manifest: Path, payload: dict[str, Any], roots: list[Path]) -> list[Item]:
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        with open(manifest, newline="", encoding="utf-8") as f:
            if manifest.suffix.lower() == ".jsonl":
                for n, line in enumerate(f, 1):
                    if line.strip():
                        row = json.loads(line)
                        if not isinstance(row, dict):
                            raise JobInputError(f"{manifest.name} line {n}: not a JSON object")
                        rows.append((n, row))
            else:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "path" not in reader.fieldnames:
                    raise JobInputError(f"{manifest.name}: needs a 'path' column, has {reader.fieldnames}")
                rows = [(n, {k: v for k, v in row.items() if v not in (None, "") and k is not None})
                        for n, row in enumerate(reader, 2)]
    except json.JSONDecodeError as exc:
        raise JobInputError(f"{manifest.name}: not valid JSON lines ({exc.msg}, line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise JobInputError(f"{manifest.name}: not UTF-8 text") from exc
    except csv.Error as exc:
        raise JobInputError(f"{manifest.name}: malformed CSV ({exc})") from exc
    items = []
    for n, row in rows:
        where = f"{manifest.name} line {n}"
        name = row.pop("path", None)
        if not isinstance(name, str) or not name:
            raise JobInputError(f"{where}: no 'path'")
        try:
            path = (folder / name).resolve()
        except (OSError, ValueError) as exc:
            raise JobInputError(f"{where}: unusable path {name!r}: {exc}") from exc
        if not inside(path, roots):
            raise SourceForbidden(f"{where}: {name} is outside the folders this job may read")
        items.append(Item(name, str(path), check_fields({**payload, **row}, where)))
    return items


def unpack_zip(archive: Path, dest: Path, *, max_files: int, max_bytes: int, max_ratio: float) -> None:
    """Unpacks an uploaded zip into `dest`, refusing path traversal, links, and anything that would unpack
    beyond the limits (zip bombs): the sizes are checked while writing, not trusted from the header."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise NotAnArchive(f"not a zip archive ({exc})") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise ArchiveTooLarge(f"too many files in the archive: {len(members)}, limit {max_files}")
        dest.mkdir(parents=True, exist_ok=True)
        total = 0
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or not name.parts or ":" in name.parts[0]:
                raise JobInputError(f"unsafe path in the archive: {member.filename!r}")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise JobInputError(f"links are not allowed in the archive: {member.filename!r}")
            if name.parts[0] == "__MACOSX" or name.name.startswith("._"):
                continue  # macOS resource forks: not photos
            target = dest.joinpath(*name.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            limit = min(max_bytes - total, int(max(member.compress_size, 1) * max_ratio) + 64 * 1024)
            written = 0
            try:
                with zf.open(member) as src, open(target, "wb") as out:
                    while chunk := src.read(1024 * 1024):
                        written += len(chunk)
                        if written > limit:
                            raise ArchiveTooLarge(f"{member.filename}: unpacks beyond the limits (a zip bomb?)")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
                raise JobInputError(f"{member.filename}: corrupt archive member ({exc})") from exc
            total += written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
