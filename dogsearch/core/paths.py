"""Where the repository's folders are, for an editable install (a checkout, or /app in the images): the trained
models (models/), the built web UI (web/dist) and the sample photos (samples/); and a file's checksum."""
from __future__ import annotations

import hashlib
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
