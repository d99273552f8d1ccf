"""PCK: a predicted keypoint is correct within `alpha` x the longer side of the labelled dog box."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dogsearch.models.pose import keypoints as K


@dataclass
class PckCounter:
    alpha: float = 0.1
    hits: np.ndarray = field(default_factory=lambda: np.zeros(K.NUM_AP10K, dtype=np.int64))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(K.NUM_AP10K, dtype=np.int64))

    def add(self, predicted: np.ndarray | None, truth: np.ndarray, visible: np.ndarray, box) -> None:
        """`predicted` (17+, 2) or None (no dog found: every counted joint is a miss); `truth` (17+, 2)."""
        x1, y1, x2, y2 = box
        threshold = self.alpha * max(x2 - x1, y2 - y1)
        vis = np.asarray(visible[: K.NUM_AP10K], dtype=bool)
        self.counts += vis
        if predicted is None:
            return
        dist = np.linalg.norm(np.asarray(predicted[: K.NUM_AP10K]) - np.asarray(truth[: K.NUM_AP10K]), axis=1)
        self.hits += vis & (dist <= threshold)

    @property
    def pck(self) -> float | None:
        total = int(self.counts.sum())
        return float(self.hits.sum() / total) if total else None

    def per_joint(self) -> dict[str, float | None]:
        return {name: (float(self.hits[j] / self.counts[j]) if self.counts[j] else None)
                for j, name in enumerate(K.AP10K_NAMES)}
