"""The all-in-one data folder (`dogsearch serve --data-dir`, `dogsearch reindex --data-dir`), named in one place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def vectors(self) -> Path:
        """The embedded engine's collections (the search service's data_dir)."""
        return Path(self.root) / "vectors"

    @property
    def photos(self) -> Path:
        """The gateway's photo store (its data_dir)."""
        return Path(self.root) / "photos"

    @property
    def jobs(self) -> Path:
        """Job state and unpacked uploads (the jobs' data_dir)."""
        return Path(self.root) / "jobs"
