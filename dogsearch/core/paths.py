"""Where the repository's folders are, for an editable install (a checkout, or /app in the images): the trained
models (models/), the built web UI (web/dist) and the sample photos (samples/)."""
from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "models"
WEB_DIST = REPO_ROOT / "web" / "dist"
SAMPLES = REPO_ROOT / "samples"
