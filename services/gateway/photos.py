"""Original photos and thumbnails on disk, one file each, written atomically."""
from __future__ import annotations

import os
import threading
from pathlib import Path

EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp", "gif": "image/gif",
               "bmp": "image/bmp", "tiff": "image/tiff"}


class PhotoStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def original(self, dog_id: str, fmt: str) -> Path:
        return self._dir(dog_id) / f"{dog_id}.{EXTENSIONS.get(fmt, 'bin')}"

    def thumbnail(self, dog_id: str) -> Path:
        return self._dir(dog_id) / f"{dog_id}.thumb.jpg"

    def save(self, dog_id: str, fmt: str, data: bytes, thumbnail: bytes) -> None:
        _write_atomic(self.original(dog_id, fmt), data)
        _write_atomic(self.thumbnail(dog_id), thumbnail)

    def delete(self, dog_id: str, fmt: str) -> None:
        for path in (self.original(dog_id, fmt), self.thumbnail(dog_id)):
            path.unlink(missing_ok=True)

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
