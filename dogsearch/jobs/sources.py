"""What a job indexes: the photos of a folder, or the rows of a CSV/JSONL manifest, or an uploaded zip.

Everything here checks untrusted input (paths from an API call, manifests, archives) and raises JobInputError
with the reason (of the kind the API answers with its 4xx)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from dogsearch.core.boxes import BadBox, Box, as_box, box_text, parse_box
from dogsearch.core.errors import Forbidden, InvalidInput, NotFound, TooLarge, UnsupportedMedia
from dogsearch.core.images import PHOTO_SUFFIXES
from dogsearch.core.jsontext import UnreadableJson, json_text
from dogsearch.gallery.fields import FROM_PHOTO, TIME_ZONE, InvalidFields, shown_value, user_fields

MANIFEST_SUFFIXES = {".csv", ".jsonl"}
LABELS = "labels.csv"  # a folder's manifest with labels="csv"
_NOISE = frozenset({"Thumbs.db", "desktop.ini", "Icon\r"})  # what file managers leave in every folder
MAX_SKIPPED_LISTED = 20  # of a folder's files that are not photos, the first named in the job


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


class NoDiskSpace(ArchiveTooLarge):
    """Unpacking an archive would take the disk below its free-space floor (DOGSEARCH_JOBS_MIN_FREE_BYTES)."""


class FieldsTooLarge(TooLarge, JobInputError):
    """A job's payload or a manifest (a cell, a row, its columns, the file) beyond the limits."""


class PhotoUnreadable(Exception):
    """A job's file that is not read: the reason is the file's outcome."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


OUTSIDE = "outside the allowed folders"
MAX_PATH = 4096  # PATH_MAX on Linux: no system call takes a longer path
SHOWN_PATH = 120  # of a path (or a file's name) sent, at most this many characters are said back


def shown_path(path: str) -> str:
    """A path as a refusal names it: at most SHOWN_PATH characters of it (a 1 MB path is not sent back)."""
    return path if len(path) <= SHOWN_PATH else f"{path[:SHOWN_PATH]}... ({len(path)} characters)"


@dataclass(frozen=True)
class FieldLimits:
    """Bounds on what a job copies into every point and batch message (JobsSettings has the same defaults)."""
    fields_bytes: int = 16 * 1024
    cell_bytes: int = 4096
    columns: int = 64
    manifest_bytes: int = 64 * 1024**2


MAX_DOG_PHOTOS = 100  # photos of one dog (a manifest's `dog`, a folder of `labels="dogs"`) in one job
DOG_COLUMN = "dog"  # the manifest column that groups photos into dogs
BOX_COLUMN = "box"  # the manifest column that marks where the dog is: "x0,y0,x1,y1", or a JSON list of four


@dataclass(frozen=True)
class Item:
    file: str  # as the user knows it: relative to the job's folder (or as written in the manifest)
    path: str  # absolute path to read
    fields: dict[str, Any]
    dog: str | None = None  # the photos of one job with the same `dog` are one dog; None: each photo its own
    box: Box | None = None  # where the dog is, as the manifest marks it (the detector is not asked); None: detected


def check_fields(fields: dict[str, Any], where: str, limits: FieldLimits | None = None) -> dict[str, Any]:
    limits = limits or FieldLimits()
    # a lone surrogate (a zip's payload field) measured as sent: user_fields refuses it with its reason
    size = len(json.dumps(fields, ensure_ascii=False, default=str).encode(errors="surrogatepass"))
    if size > limits.fields_bytes:
        raise FieldsTooLarge(f"{where}: fields too large: {size} bytes as JSON, limit {limits.fields_bytes}")
    try:
        return user_fields(fields, from_photo=True)  # `seen_at`/`location` "photo": filled as each photo is read
    except InvalidFields as exc:
        raise JobInputError(f"{where}: {exc.reason}") from exc


def _check_row(row: dict[str, Any], where: str, limits: FieldLimits) -> None:
    if len(row) > limits.columns:
        raise FieldsTooLarge(f"{where}: {len(row)} columns, limit {limits.columns}")
    for key, value in row.items():
        size = len((value if isinstance(value, str) else json.dumps(value, default=str)).encode())
        if size > limits.cell_bytes:
            raise FieldsTooLarge(f"{where}: the value of {str(key)[:64]!r} is {size} bytes, limit {limits.cell_bytes}")


def inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_source(path: str, labels: str | None, roots: list[Path]) -> tuple[Path, Path | None]:
    """(folder, manifest or None) for a job's `path`, checked against the allowed roots."""
    if not roots:
        raise SourceForbidden("indexing server folders is switched off: set DOGSEARCH_JOBS_ALLOWED_ROOTS, "
                            "or upload a zip")
    shown = shown_path(path)
    if len(path) > MAX_PATH:
        raise JobInputError(f"path {shown}: longer than {MAX_PATH} characters")
    raw = Path(path)
    if not raw.is_absolute():
        raise JobInputError(f"path must be absolute, got {shown!r}")
    try:
        resolved = raw.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop (RuntimeError before 3.13)
        raise JobInputError(f"unusable path {shown!r}: {_why(exc)}") from exc
    if not inside(resolved, roots):
        raise SourceForbidden(f"{shown} is outside the folders this server may index")
    try:
        return _source(resolved, shown, labels)
    except OSError as exc:  # a name longer than its file system takes (255 bytes), a folder it may not enter
        raise JobInputError(f"unusable path {shown!r}: {_strerror(exc)}") from exc


def _source(resolved: Path, shown: str, labels: str | None) -> tuple[Path, Path | None]:
    if not resolved.exists():
        raise SourceNotFound(f"{shown} does not exist")
    if resolved.is_dir():
        if labels == "csv":
            manifest = resolved / LABELS
            if not manifest.is_file():
                raise JobInputError(f"labels 'csv' needs a labels.csv in {shown}")
            return resolved, manifest
        return resolved, None
    if resolved.suffix.lower() not in MANIFEST_SUFFIXES:
        raise JobInputError(f"{shown}: a folder, a .csv or a .jsonl manifest, please")
    return resolved.parent, resolved


@dataclass(frozen=True)
class Listing:
    items: list[Item]
    skipped: list[str]  # the folder's other files, not photos (an archive inside it, notes): said, not indexed


@dataclass(frozen=True)
class Reads:
    """Where a job's photos are, as real paths (links resolved): whole folders (a folder's job: the folder, and each
    folder a link in it leads to), and folders a manifest lists files of (those files only, not their sub-folders).
    Two jobs that share photos would each count them (and work them twice): `shared` finds where."""
    trees: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()

    @classmethod
    def of(cls, job: dict[str, Any]) -> Reads:
        """A stored job's; one stored before jobs kept theirs is taken to read its whole folder."""
        reads = job.get("reads")
        return cls(tuple(reads["trees"]), tuple(reads["folders"])) if reads else cls((job["root"],))

    def stored(self) -> dict[str, list[str]]:
        return {"trees": list(self.trees), "folders": list(self.folders)}

    def shared(self, other: Reads) -> str | None:
        """A folder whose photos both read (of two folders one inside the other, the inner one), or None."""
        for mine, theirs in ((self, other), (other, self)):
            for tree in mine.trees:
                if held := next((f for f in (*theirs.trees, *theirs.folders) if _holds(tree, f)), None):
                    return held
        both = set(self.folders) & set(other.folders)  # a set: two manifests may list files of a thousand folders
        return min(both) if both else None


def _holds(tree: str, folder: str) -> bool:
    return folder == tree or folder.startswith(tree.rstrip("/") + "/")


def job_reads(folder: Path, manifest: Path | None, labels: str | None, payload: dict[str, Any], roots: list[Path],
              limits: FieldLimits | None = None) -> Reads:
    """Where a job would read its photos, found as its worker will list them (blocking: a folder is walked, a
    manifest read and checked: JobInputError as list_job)."""
    if manifest is not None:
        items = list_items(folder, manifest, labels, payload, roots, limits)
        return Reads(folders=tuple(sorted({str(Path(item.path).parent) for item in items})))
    *_, linked = _walk(folder, roots)
    trees = sorted({str(folder), *linked})
    return Reads(trees=tuple(t for t in trees if not any(o != t and _holds(o, t) for o in trees)))


def list_items(folder: Path, manifest: Path | None, labels: str | None, payload: dict[str, Any],
               roots: list[Path], limits: FieldLimits | None = None) -> list[Item]:
    return list_job(folder, manifest, labels, payload, roots, limits).items


def list_job(folder: Path, manifest: Path | None, labels: str | None, payload: dict[str, Any],
             roots: list[Path], limits: FieldLimits | None = None) -> Listing:
    """The job's files, and a folder's files it skips. A folder's files are checked when read (`open_photo`), not
    here: a link listed now may change before a worker reads it. `labels`: "folders" (DIR/<breed>/<photo>), "dogs"
    (DIR/<dog>/<photo>: each folder's photos are one dog), "none"; a manifest's `dog` column groups its rows into
    dogs."""
    if manifest is not None:
        return Listing(grouped(_manifest_items(folder, manifest, payload, roots, limits or FieldLimits())), [])
    photos, skipped, _ = _walk(folder, roots)
    items = []
    for rel in sorted(photos):
        fields, dog = dict(payload), None
        if labels == "dogs" and len(rel.parts) > 1:
            dog = rel.parts[0]
        elif labels != "none" and len(rel.parts) > 1:
            fields["breed"] = rel.parts[0]
        items.append(Item(rel.as_posix(), str(folder / rel), fields, dog))
    return Listing(grouped(items), sorted(p.as_posix() for p in skipped))


def grouped(items: list[Item]) -> list[Item]:
    """The items with each dog's photos together, where its first photo was (a batch takes a dog whole); at most
    MAX_DOG_PHOTOS a dog."""
    dogs: dict[str, list[Item]] = {}
    for item in items:
        if item.dog is not None:
            dogs.setdefault(item.dog, []).append(item)
    for dog, photos in dogs.items():
        if len(photos) > MAX_DOG_PHOTOS:
            raise JobInputError(f"dog {dog[:64]!r}: {len(photos)} photos, at most {MAX_DOG_PHOTOS} a dog in one job")
    out = []
    for item in items:
        if item.dog is None:
            out.append(item)
        elif item is dogs[item.dog][0]:
            out += dogs[item.dog]
    return out


def _walk(folder: Path, roots: list[Path]) -> tuple[list[PurePosixPath], list[PurePosixPath], list[str]]:
    """The photo files under `folder`, relative to it, its other files (but hidden ones, the desktop's own, and
    a labels.csv at the top), and the real folders its links lead to. Linked folders are followed only inside the
    allowed roots and each real folder once (a link loop ends); a link out of the roots is listed so that its file
    fails."""
    found: list[PurePosixPath] = []
    others: list[PurePosixPath] = []
    linked: list[str] = []
    roots = [Path(os.path.realpath(root)) for root in roots]
    seen = {_identity(folder)}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        rel_dir = PurePosixPath(Path(dirpath).relative_to(folder).as_posix())
        keep = []
        # Real folders before links to them, so that a file is listed under its own folder's name.
        for name in sorted(dirnames, key=lambda n: (os.path.islink(os.path.join(dirpath, n)), n)):
            full = os.path.join(dirpath, name)
            key = _identity(Path(full))
            if key is None or key in seen:
                continue  # gone, a loop, or a folder reached twice
            if os.path.islink(full):
                real = os.path.realpath(full)
                if not inside(Path(real), roots):
                    found.append(rel_dir / name)  # fails when read: outside the allowed folders
                    continue
                linked.append(real)
            seen.add(key)
            keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            if Path(name).suffix.lower() in PHOTO_SUFFIXES:
                found.append(rel_dir / name)
            elif not (name.startswith(".") or name in _NOISE or (rel_dir == PurePosixPath(".") and name == LABELS)):
                others.append(rel_dir / name)
    return found, others, linked


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except (OSError, ValueError):  # a dangling link, a loop
        return None
    return st.st_dev, st.st_ino


def open_photo(path: str, roots: list[str], max_bytes: int) -> bytes:
    """A job's file, read only when it is a regular file inside the allowed roots (links resolved) and at most
    `max_bytes` long: a 3 GB ".jpg", a FIFO or /dev/zero behind a link is refused before any byte is read.
    Raises PhotoUnreadable with a reason that names no server path."""
    return _read_inside(path, [Path(r) for r in roots], max_bytes, PhotoUnreadable, "the photo")


def _read_inside(path: str | Path, roots: list[Path], max_bytes: int, error: Callable[[str], Exception],
                 what: str) -> bytes:
    """The bytes of a regular file inside `roots` (links resolved, then checked), at most `max_bytes`: `error(reason)`
    otherwise, its reason naming no server path."""
    real, allowed = os.path.realpath(path), [Path(os.path.realpath(r)) for r in roots]
    if not inside(Path(real), allowed):
        raise error(OUTSIDE)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: not a link swapped in since.
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        raise error(f"{what} could not be read: {_strerror(exc)}") from exc
    with os.fdopen(fd, "rb") as f:
        opened = Path(f"/proc/self/fd/{fd}")  # what was opened: a folder on the way swapped for a link since shows
        if opened.is_symlink() and not inside(Path(os.readlink(opened)), allowed):
            raise error(OUTSIDE)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error("not a regular file")
        if st.st_size > max_bytes:
            raise error(f"file too large: {st.st_size} bytes, limit {max_bytes}")
        try:
            data = f.read(max_bytes + 1)  # the file may have grown since fstat
        except OSError as exc:
            raise error(f"{what} could not be read: {_strerror(exc)}") from exc
    if len(data) > max_bytes:
        raise error(f"file too large: over {max_bytes} bytes")
    return data


def _strerror(exc: OSError) -> str:
    return (exc.strerror or "input/output error").lower()  # never str(exc): it carries the path


def _why(exc: Exception) -> str:
    """Why a path cannot be resolved, naming no path (an OSError's and a link loop's text carry one)."""
    if isinstance(exc, OSError):
        return _strerror(exc)
    return "a loop of links" if isinstance(exc, RuntimeError) else str(exc)  # ValueError: "embedded null byte"


def _manifest_items(folder: Path, manifest: Path, payload: dict[str, Any], roots: list[Path],
                    limits: FieldLimits) -> list[Item]:
    rows: list[tuple[int, dict[str, Any]]] = []

    def refused(reason: str) -> Exception:
        kind = (SourceForbidden if reason == OUTSIDE else FieldsTooLarge if reason.startswith("file too large")
                else JobInputError)
        return kind(f"{manifest.name}: {reason}")

    # as a photo is read: a labels.csv linked to /etc/shadow, or a FIFO, is refused before a byte is read
    data = _read_inside(manifest, roots, limits.manifest_bytes, refused, "the manifest")
    try:
        # decoded as it is read; utf-8-sig: the byte-order mark Excel's "CSV UTF-8" begins with is no column's name
        with io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="") as f:
            if manifest.suffix.lower() == ".jsonl":
                for n, line in enumerate(f, 1):
                    if len(line) > limits.fields_bytes * 2:  # before parsing it; the fields are checked after
                        raise FieldsTooLarge(f"{manifest.name} line {n}: {len(line)} characters, "
                                             f"limit {limits.fields_bytes * 2}")
                    if line.strip():
                        try:
                            row = json_text(line)
                        except UnreadableJson as exc:
                            raise JobInputError(f"{manifest.name} line {n}: {exc}") from exc
                        if not isinstance(row, dict):
                            raise JobInputError(f"{manifest.name} line {n}: not a JSON object")
                        _check_row(row, f"{manifest.name} line {n}", limits)
                        rows.append((n, row))
            else:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "path" not in reader.fieldnames:
                    raise JobInputError(f"{manifest.name}: needs a 'path' column, has {shown_value(reader.fieldnames)}")
                if len(reader.fieldnames) > limits.columns:
                    raise FieldsTooLarge(f"{manifest.name}: {len(reader.fieldnames)} columns, limit {limits.columns}")
                for n, row in enumerate(reader, 2):
                    # A row with more cells than columns keeps the rest under the key None: dropped, but bounded.
                    _check_row({str(k): v for k, v in row.items()}, f"{manifest.name} line {n}", limits)
                    rows.append((n, {k: v for k, v in row.items() if v not in (None, "") and k is not None}))
    except json.JSONDecodeError as exc:
        raise JobInputError(f"{manifest.name}: not valid JSON lines ({exc.msg}, line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise JobInputError(f"{manifest.name}: not UTF-8 text") from exc
    except csv.Error as exc:
        raise JobInputError(f"{manifest.name}: malformed CSV ({exc})") from exc
    items = []
    listed: dict[str, int] = {}  # each item's name in the job, and its line: a job counts each once
    for n, row in rows:
        where = f"{manifest.name} line {n}"
        name = row.pop("path", None)
        if not isinstance(name, str) or not name:
            raise JobInputError(f"{where}: no 'path'")
        dog = row.pop(DOG_COLUMN, None)
        if dog is not None and (isinstance(dog, bool) or not isinstance(dog, str | int) or str(dog).strip() == ""):
            raise JobInputError(f"{where}: '{DOG_COLUMN}' names a dog: a string or a whole number")
        box = row.pop(BOX_COLUMN, None)
        try:
            box = None if box is None else parse_box(box) if isinstance(box, str) else as_box(box)
        except BadBox as exc:
            raise JobInputError(f"{where}: {exc.reason}") from None
        try:
            path = (folder / name).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise JobInputError(f"{where}: unusable path {shown_path(name)!r}: {_why(exc)}") from exc
        if not inside(path, roots):
            raise SourceForbidden(f"{where}: {shown_path(name)} is outside the folders this job may read")
        if Path(name).is_absolute() and path.is_relative_to(folder):
            name = path.relative_to(folder).as_posix()  # shown relative to the job's folder, never a server path
        if box is not None:  # one row a dog: a photo of several dogs is listed once for each
            name = f"{name} [box {box_text(box)}]"
        if name in listed:
            raise JobInputError(f"{where}: {shown_path(name)} is listed again (first on line {listed[name]})")
        listed[name] = n
        items.append(Item(name, str(path), check_fields(_row_fields(payload, row), where, limits),
                          None if dog is None else str(dog).strip(), box))
    return items


def _row_fields(payload: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """A manifest row's fields over the job's. A row that gives its own time leaves the job's time zone out: that
    zone is for camera times read from photos (seen_at=photo), and this row's is not one."""
    fields = {**payload, **row}
    if row.get("seen_at") not in (None, FROM_PHOTO) and TIME_ZONE not in row:
        fields.pop(TIME_ZONE, None)
    return fields


_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def declared_entries(archive: Path) -> int | None:
    """The entry count the end-of-central-directory record declares (its Zip64 record's when there is one), read
    from the archive's tail: zipfile parses the whole central directory on open, a million entries of it.
    None when there is no such record (not a zip)."""
    with open(archive, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        tail_at = max(0, size - (22 + 65535 + 20))  # the record, its longest comment, the Zip64 locator before it
        f.seek(tail_at)
        tail = f.read()
        at = tail.rfind(_EOCD)
        if at < 0 or len(tail) - at < 22:
            return None
        count = struct.unpack("<H", tail[at + 10:at + 12])[0]
        locator = tail[at - 20:at] if at >= 20 else b""
        if not locator.startswith(_ZIP64_LOCATOR):
            return count
        record_at = struct.unpack("<Q", locator[8:16])[0]
        if record_at > size - 56:
            return count
        f.seek(record_at)
        record = f.read(56)
        if not record.startswith(_ZIP64_EOCD):
            return count
        return max(count, struct.unpack("<Q", record[32:40])[0])


def unpack_zip(archive: Path, dest: Path, *, max_files: int, max_bytes: int, max_ratio: float,
               min_free_bytes: int = 0) -> None:
    """Unpacks an uploaded zip into `dest`, refusing path traversal, links, and anything that would unpack
    beyond the limits (zip bombs): the sizes are checked while writing, not trusted from the header. The entry
    count is checked before the central directory is parsed, and the declared sizes against the free disk
    (keeping `min_free_bytes` free)."""
    entries = declared_entries(archive)
    if entries is not None and entries > max_files:
        raise ArchiveTooLarge(f"too many entries in the archive: {entries}, limit {max_files}")
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise NotAnArchive(f"not a zip archive ({exc})") from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise ArchiveTooLarge(f"too many files in the archive: {len(members)}, limit {max_files}")
        dest.mkdir(parents=True, exist_ok=True)
        # What may be written before the disk goes below the floor: the declared sizes now, the real ones below.
        room = shutil.disk_usage(dest).free - min_free_bytes
        declared = sum(m.file_size for m in members)
        if declared > room:
            raise NoDiskSpace(f"not enough free disk space to unpack the archive ({declared} bytes): "
                              "try again later or with a smaller one")
        max_bytes = min(max_bytes, max(room, 0))
        total = 0
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or not name.parts or ":" in name.parts[0]:
                raise JobInputError(f"unsafe path in the archive: {shown_path(member.filename)!r}")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise JobInputError(f"links are not allowed in the archive: {shown_path(member.filename)!r}")
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
                            raise ArchiveTooLarge(f"{shown_path(member.filename)}: unpacks beyond the limits "
                                                  "(a zip bomb?)")
                        out.write(chunk)
            except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
                raise JobInputError(f"{shown_path(member.filename)}: corrupt archive member ({exc})") from exc
            total += written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
