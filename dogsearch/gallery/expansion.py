"""Query expansion, an option (DOGSEARCH_GATEWAY_QUERY_EXPANSION): a search ranks by its query moved towards its
nearest stored photos (alpha query expansion: Radenović, Tolias and Chum, "Fine-tuning CNN image retrieval with no
human annotation", 2018).

The query's `neighbours` nearest entries are added to it, each weighed by its cosine to the power `power`, and the
sum, made a unit vector again, ranks the gallery. The nearest photos add the angles and light one photo lacks, so more
of the breed's look-alikes come up the list (mAP and precision@10 rise on every set measured); but where the first
result is of another breed or dog, the list follows it, and the right one falls (recall@5 falls): the trade
docs/embedder-eval.md, "Query expansion", measures. Ranked by the whole vector, with at most two neighbours the first
result never changes (its cosine with the expanded query gains at least as much as any other's); a model that
re-ranks (core/judged.py) re-ranks by the expanded query's parts, which may change it. Scores stay the plain
query's: the same-dog calibration reads those. One definition, used by the gallery's search (with the engine's
neighbours) and by `dogsearch eval breed|identity --query-expansion N` (on a matrix).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Expansion:
    neighbours: int  # 0: no expansion, the plain query
    power: float = 0.0  # each neighbour weighs its cosine ** power (0: all alike, as validation chose)

    def __post_init__(self) -> None:
        if isinstance(self.neighbours, bool) or not isinstance(self.neighbours, int) or self.neighbours < 0:
            raise ValueError(f"neighbours must be an int >= 0, got {self.neighbours!r}")
        if not np.isfinite(self.power) or self.power < 0:
            raise ValueError(f"power must be a finite number >= 0, got {self.power!r}")

    @property
    def on(self) -> bool:
        return self.neighbours > 0


def expand(query: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, power: float) -> np.ndarray:
    """The unit vector of the query plus its neighbours (rows of unit vectors), each weighed by its cosine (``scores``)
    ** ``power``; a neighbour at a cosine of 0 or less adds nothing."""
    query = np.asarray(query, dtype=np.float32)
    neighbours = np.asarray(neighbours, dtype=np.float32).reshape(-1, query.shape[-1])
    scores = np.asarray(scores, dtype=np.float32)
    weights = np.where(scores > 0, np.maximum(scores, 0) ** np.float32(power), 0).astype(np.float32)
    total = query + weights @ neighbours
    return total / np.linalg.norm(total)


def expanded_queries(embeddings: np.ndarray, expansion: Expansion) -> np.ndarray:
    """Leave-one-out: row i is photo i's expanded query, its neighbours found among the others (as the search finds
    them among the stored photos); the photos themselves without an expansion."""
    emb = np.asarray(embeddings, dtype=np.float32)
    if not expansion.on:
        return emb
    others = emb @ emb.T
    np.fill_diagonal(others, -np.inf)  # a photo is not its own neighbour
    n = min(expansion.neighbours, len(emb) - 1)
    nearest = np.argsort(-others, axis=1, kind="stable")[:, :n]
    return np.stack([expand(emb[i], emb[nearest[i]], others[i, nearest[i]], expansion.power) for i in range(len(emb))])
