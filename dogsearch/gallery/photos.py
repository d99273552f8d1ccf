"""Original photos on disk, one file each, written atomically; thumbnails made from them when first asked for."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from PIL import Image

from dogsearch.core.exif import strip_private
from dogsearch.core.images import DecodeBudget, decode_image, thumbnail_jpeg

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
               "bmp": "image/bmp", "tiff": "image/tiff"}
_NO_LIMIT = 1 << 62  # a stored original passed the upload limits when it came in


class PhotoStore:
    def __init__(self, root: Path, thumbnail_px: int = 256, decode_budget: DecodeBudget | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.thumbnail_px = thumbnail_px
        self.decode_budget = decode_budget  # a page of thumbnails of large PNGs decodes a few at a time

    def original(self, dog_id: str, fmt: str) -> Path:
        return self._dir(dog_id) / f"{dog_id}.{EXTENSIONS.get(fmt, 'bin')}"

    def thumbnail(self, dog_id: str, fmt: str) -> Path | None:
        """The thumbnail's file, made from the original the first time it is asked for (blocking); None when the
        original is missing. Not made at ingestion: most photos of a bulk import are never looked at, and a file
        fewer per photo is a good part of what a job costs besides the model (docs/operations.md)."""
        path = self._thumbnail_path(dog_id)
        if path.exists():
            return path
        try:
            image = self.decode_original(dog_id, fmt, min_side=self.thumbnail_px)
        except FileNotFoundError:
            return None
        _write_atomic(path, thumbnail_jpeg(image, self.thumbnail_px))
        return path

    def public(self, dog_id: str, fmt: str) -> Path | None:
        """The file served as the photo: the original without its private metadata (GPS position, camera serial,
        owner; dogsearch.core.exif), made the first time it is asked for, so galleries stored before get theirs too.
        A hard link to the original when there was nothing to take out. None when the original is missing."""
        path = self._public_path(dog_id, fmt)
        if path.exists():
            return path
        original = self.original(dog_id, fmt)
        try:
            data = original.read_bytes()
        except FileNotFoundError:
            return None
        stripped = strip_private(data, fmt)
        if stripped == data:
            _link_atomic(original, path)
        else:
            _write_atomic(path, stripped)
        return path

    def decode_original(self, dog_id: str, fmt: str, *, min_side: int | None = None) -> Image.Image:
        """The stored photo's pixels (blocking), a JPEG shrunk on load down to `min_side`, without the upload
        limits: it passed them when it came in. FileNotFoundError when it is missing."""
        data = self.original(dog_id, fmt).read_bytes()
        return decode_image(data, max_bytes=_NO_LIMIT, max_pixels=_NO_LIMIT, min_side=min_side,
                            budget=self.decode_budget).image

    def save(self, dog_id: str, fmt: str, data: bytes) -> None:
        _write_atomic(self.original(dog_id, fmt), data)

    def delete(self, dog_id: str, fmt: str) -> None:
        for path in (self.original(dog_id, fmt), self._thumbnail_path(dog_id), self._public_path(dog_id, fmt)):
            path.unlink(missing_ok=True)

    def _thumbnail_path(self, dog_id: str) -> Path:
        return self._dir(dog_id) / f"{dog_id}.thumb.jpg"

    def _public_path(self, dog_id: str, fmt: str) -> Path:
        return self._dir(dog_id) / f"{dog_id}.public.{EXTENSIONS.get(fmt, 'bin')}"

    def _dir(self, dog_id: str) -> Path:
        # Two levels of fan-out keep directories small at millions of photos.
        return self.root / dog_id[:2] / dog_id[2:4]


def media_type(path: Path) -> str:
    return MEDIA_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers see the whole file or none of it: written under a temporary name of this writer's own (process and
    thread), then renamed over. The folder is made only when the first write finds it missing."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        file = open(tmp, "wb")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = open(tmp, "wb")
    try:
        with file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _link_atomic(source: Path, path: Path) -> None:
    """`path` becomes another name of `source`'s file (no second copy on disk), or already is one."""
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)
    os.replace(tmp, path)
