"""Ranked by the whole vector, judged by a part of it. A fusion's vector (models/fusion.py) is the ViT's unit vector
with the CNN's breed part after it: the breeds rank unseen breeds better, but they raise the scores of every dog of
the query's breed alike, so a dog's own photo stands out less from its look-alikes and same-dog verdicts weaken.
Its ViT part alone is exactly the base ViT's vector, whose calibration reads verdicts as well as before: so a search
ranks by the fusion and the same-dog verdict reads each ranked dog's cosine of the ViT part (docs/embedder-eval.md,
"Ranked by the fusion, judged by its ViT part").

The calibration file says so (its ``part``); the gallery and the watches ask for that cosine. Through the engine: the
query's part, zero-padded to the whole width, scores a stored vector as the part cosine times the stored part's
length, which a fusion fixes (every part is a unit vector before the whole is normalised), so ``scale`` undoes it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# A search judges each result against the best other of the dogs it shows (10 by default). Where the verdict reads the
# ranking's own score, that is the next dog; where it reads a part, any of the ten may score best on it. Watches ask
# for as many, and the evaluations judge alike.
SHOWN = 10


@dataclass(frozen=True)
class JudgedPart:
    dims: int  # the leading components the verdict reads
    scale: float  # 1 / the length of a stored unit vector's part

    def __post_init__(self) -> None:
        if self.dims < 1 or not (np.isfinite(self.scale) and self.scale >= 1):
            raise ValueError(f"a judged part needs dims >= 1 and a scale >= 1, not {self.dims} and {self.scale}")

    def queries(self, vectors: np.ndarray) -> np.ndarray:
        """Rows of whole vectors -> their parts as unit rows, zero-padded to the whole width (what the engine is
        asked with: its score of a stored vector, times ``scale``, is the part cosine)."""
        v = np.asarray(vectors, dtype=np.float32)
        out = np.zeros_like(v)
        part = v[..., :self.dims]
        out[..., :self.dims] = part / np.maximum(np.linalg.norm(part, axis=-1, keepdims=True), 1e-12)
        return out


class JudgedParts(Protocol):
    """Which part of a model's vectors its same-dog verdict reads (None: the whole vector)."""

    async def judged_part(self, model_id: str) -> JudgedPart | None: ...
