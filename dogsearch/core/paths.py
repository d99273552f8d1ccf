"""Where the repository's folders are, for an editable install (a checkout, or /app in the images): the trained
models (models/), the built web UI (web/dist) and the sample photos (samples/); a file's checksum; and how a cache
file is written where other processes may write it too."""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
WEB_DIST = REPO_ROOT / "web" / "dist"
SAMPLES = REPO_ROOT / "samples"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """The sha256 of a file's bytes (weights, exports), read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """`write(path)` makes the file under a temporary name of this call's own beside `target`, which it then replaces:
    a reader sees the whole file or the one before. The name is random, not the process id: replicas that start
    together on one cache volume (two embedders, the embedder and the pose service) each fill the cache, and in
    their containers the processes' ids are alike, so they wrote into one temporary file and the second rename
    failed, leaving that service's model unloaded (and the service not ready) until it was restarted."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
