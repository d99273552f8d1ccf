"""Original photos on disk, one file each, written atomically and durably (fsync'd before the caller stores the
vector that shows them); thumbnails made from them when first asked for, best-effort (they can be made again)."""
from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from dogsearch.core.errors import StorageFull
from dogsearch.core.exif import REENCODED, public_jpeg, strip_private
from dogsearch.core.images import DecodeBudget, decode_image, thumbnail_jpeg

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
              "HEIF": "heic", "AVIF": "avif"}
# Of the files served: never a HEIC or an AVIF (their public copy is a JPEG).
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
               "bmp": "image/bmp", "tiff": "image/tiff"}
_NO_LIMIT = 1 << 62  # a stored original passed the upload limits when it came in


class PhotoStore:
    def __init__(self, root: Path, thumbnail_px: int = 256, decode_budget: DecodeBudget | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.thumbnail_px = thumbnail_px
        self.decode_budget = decode_budget  # a page of thumbnails of large PNGs decodes a few at a time

    def original(self, photo_id: str, fmt: str) -> Path:
        return self._dir(photo_id) / f"{photo_id}.{EXTENSIONS.get(fmt, 'bin')}"

    def thumbnail(self, photo_id: str, fmt: str) -> Path | None:
        """The thumbnail's file, made from the original the first time it is asked for (blocking); None when the
        original is missing. Not made at ingestion: most photos of a bulk import are never looked at, and a file
        fewer per photo is a good part of what a job costs besides the model (docs/operations.md)."""
        path = self._thumbnail_path(photo_id)
        if path.exists():
            return path
        try:
            image = self.decode_original(photo_id, fmt, min_side=self.thumbnail_px)
        except FileNotFoundError:
            return None
        _write_atomic(path, thumbnail_jpeg(image, self.thumbnail_px), durable=False)  # made again if lost
        return path

    def public(self, photo_id: str, fmt: str) -> Path | None:
        """The file served as the photo: the original without its private metadata (GPS position, camera serial,
        owner; dogsearch.core.exif), made the first time it is asked for, so galleries stored before get theirs too.
        A hard link to the original when there was nothing to take out; a JPEG of a HEIF's or AVIF's pixels (decoded
        within the store's budget). None when the original is missing."""
        path = self._public_path(photo_id, fmt)
        if path.exists():
            return path
        original = self.original(photo_id, fmt)
        try:
            if fmt in REENCODED:
                _write_atomic(path, public_jpeg(self.decode_original(photo_id, fmt)), durable=False)
                return path
            data = original.read_bytes()
        except FileNotFoundError:
            return None
        stripped = strip_private(data, fmt)
        if stripped == data:
            _link_atomic(original, path)
        else:
            _write_atomic(path, stripped, durable=False)  # made again if lost
        return path

    def decode_original(self, photo_id: str, fmt: str, *, min_side: int | None = None) -> Image.Image:
        """The stored photo's pixels (blocking), a JPEG shrunk on load down to `min_side`, without the upload
        limits: it passed them when it came in. FileNotFoundError when it is missing."""
        data = self.original(photo_id, fmt).read_bytes()
        return decode_image(data, max_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT, min_side=min_side,
                            budget=self.decode_budget).image

    def save(self, photo_id: str, fmt: str, data: bytes) -> bool:
        """Writes the photo durably: on disk (file and folder entry fsync'd) when this returns. True when this call
        made the file, False when it was there already (then it is written again: the same bytes, whole).
        StorageFull (nothing left behind) when the disk or quota is full."""
        path = self.original(photo_id, fmt)
        existed = path.exists()
        _write_atomic(path, data)
        return not existed

    def delete(self, photo_id: str, fmt: str) -> None:
        for path in (self.original(photo_id, fmt), self._thumbnail_path(photo_id), self._public_path(photo_id, fmt)):
            path.unlink(missing_ok=True)

    def files(self) -> Iterator[Path]:
        """Every file under the store (originals, thumbnails, temporary files a crash left), folder by folder."""
        for first in sorted(self.root.iterdir()):
            if first.is_dir():
                for second in sorted(first.iterdir()):
                    if second.is_dir():
                        yield from sorted(p for p in second.iterdir() if p.is_file())

    @staticmethod
    def photo_of(path: Path) -> str | None:
        """The photo id a file of the store belongs to (its original or its thumbnail); None for a temporary file."""
        if path.name.startswith(".tmp-"):
            return None
        return path.name.split(".", 1)[0]

    def _thumbnail_path(self, photo_id: str) -> Path:
        return self._dir(photo_id) / f"{photo_id}.thumb.jpg"

    def _public_path(self, photo_id: str, fmt: str) -> Path:
        extension = "jpg" if fmt in REENCODED else EXTENSIONS.get(fmt, "bin")
        return self._dir(photo_id) / f"{photo_id}.public.{extension}"

    def _dir(self, photo_id: str) -> Path:
        # Two levels of fan-out keep directories small at millions of photos.
        return self.root / photo_id[:2] / photo_id[2:4]


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")


def _write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Readers see the whole file or none of it: written under a temporary name of this call's own (`_temporary`),
    then renamed over. `durable`: the file is fsync'd before the rename and its folder after it, so that
    once this returns a power cut keeps it. The folders are made only when the first write finds them missing. A
    full disk is a StorageFull, and the temporary file is gone."""
    tmp = _temporary(path)
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            _make_dirs(path.parent, durable)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _FULL:
            raise StorageFull("the server's disk is full: the photo was not stored; try again later") from None
        raise


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _temporary(path: Path) -> Path:
    """A name beside `path` for this call alone. Random, not the process and thread ids: gateway replicas in their
    containers (each process id 1, thread ids alike) share one photo folder, and two writing one photo at once wrote
    into one temporary file: one's open emptied the other's file, one's rename took the other's half-written file
    and the second rename failed. The `.tmp-` prefix tells `photo_of` (and `dogsearch check`) it is no photo's."""
    return path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _make_dirs(folder: Path, durable: bool) -> None:
    """Makes `folder` and its missing parents; `durable`: each new one's entry fsync'd in its parent."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        try:
            new.mkdir()
        except FileExistsError:  # another writer made it meanwhile
            continue
        if durable:
            _fsync_dir(new.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_atomic(source: Path, path: Path) -> None:
    """`path` becomes another name of `source`'s file (no second copy on disk), or already is one."""
    tmp = _temporary(path)
    os.link(source, tmp)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # left when `path` already was that file: a rename onto its own file does nothing
