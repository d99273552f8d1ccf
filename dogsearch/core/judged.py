"""Ranked by the whole vector, judged by a part of it. A fusion's vector (models/fusion.py) is the ViT's unit vector
with the CNN's breed part after it: the breeds rank unseen breeds better, but they raise the scores of every dog of
the query's breed alike, so a dog's own photo stands out less from its look-alikes and same-dog verdicts weaken.
Its ViT part alone is exactly the base ViT's vector, whose calibration reads verdicts as well as before: so a search
ranks by the fusion and the same-dog verdict reads each ranked dog's cosine of the ViT part (docs/embedder-eval.md,
"Ranked by the fusion, judged by its ViT part").

The calibration file says so (its ``part``); the gallery and the watches ask for that cosine. Through the engine: the
query's part, zero-padded to the whole width, scores a stored vector as the part cosine times the stored part's
length, which a fusion fixes (every part is a unit vector before the whole is normalised), so ``scale`` undoes it.

A part may also re-rank (``Rerank``): the breed part lifts every dog of the query's breed alike, and past some weight
it ranks a look-alike of the query's breed above the dog itself. Capped, the breed cosine still pushes other breeds
down but stops telling apart dogs whose breed opinions already agree, so among those the ViT part's order stands
(docs/embedder-eval.md, "The breed part capped")."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rerank:
    """A search's first ``depth`` dogs by the whole vector, ranked again by ``part + weight² · min(rest, cap)``: the
    judged part's cosine and the cosine of the rest of the vector (a breed fusion's breed part), the rest's capped.
    Divided by ``1 + weight² · cap``, so that a dog identical to the query scores 1."""
    weight: float
    cap: float
    depth: int

    def __post_init__(self) -> None:
        if not (self.weight > 0 and 0 < self.cap <= 1 and self.depth >= 1):
            raise ValueError(f"a re-ranking needs weight > 0, 0 < cap <= 1 and depth >= 1, not {self}")

    def scores(self, part: np.ndarray, rest: np.ndarray) -> np.ndarray:
        w2 = self.weight ** 2
        return (np.asarray(part) + w2 * np.minimum(rest, self.cap)) / (1 + w2 * self.cap)

    def searched(self, whole: np.ndarray, part: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """(queries, entries) scores whose order per row is the search's: the first ``depth`` entries of each row by
        ``whole`` by their ``scores``, then the others by ``whole`` (for evaluations; a photo's own column should
        be -inf in ``whole``)."""
        order = np.argsort(-whole, axis=1, kind="stable")[:, : self.depth]
        rows = np.arange(whole.shape[0])[:, None]
        out = np.array(whole, dtype=np.float64)  # cosines lie in [-1, 1]: +3 puts the re-ranked before the rest
        top = out[rows, order]
        out[rows, order] = np.where(np.isfinite(top), self.scores(part[rows, order], rest[rows, order]) + 3.0, top)
        return out


@dataclass(frozen=True)
class JudgedPart:
    dims: int  # the leading components the verdict reads
    scale: float  # 1 / the length of a stored unit vector's part
    rerank: Rerank | None = None  # how the first dogs are ranked again (None: by the whole vector)

    def __post_init__(self) -> None:
        if self.dims < 1 or not (np.isfinite(self.scale) and self.scale >= 1):
            raise ValueError(f"a judged part needs dims >= 1 and a scale >= 1, not {self.dims} and {self.scale}")
        if self.rerank is not None and not self.scale > 1:
            raise ValueError("a re-ranking reads the rest of the vector: the part must not be all of it (scale > 1)")

    @property
    def rest_scale(self) -> float:
        """1 / the length of the rest of a stored unit vector (the part's length squared and the rest's sum to 1)."""
        return float(1.0 / np.sqrt(1.0 - 1.0 / self.scale ** 2))

    def rest_queries(self, vectors: np.ndarray) -> np.ndarray:
        """Rows of whole vectors -> the rest after the part as unit rows, zero-padded in front: the engine's score
        of a stored vector, times ``rest_scale``, is the rest's cosine."""
        return _unit_slice(vectors, slice(self.dims, None))

    def searched(self, vectors: np.ndarray, whole: np.ndarray, queries: np.ndarray | None = None) -> np.ndarray:
        """The scores whose order is a search's among ``vectors`` (rows of whole vectors; ``whole``: each query's
        similarities with them, a photo's own -inf), for evaluations: ``whole`` itself without a re-ranking.
        ``queries``: the whole vectors each row searched with (an expanded query's), ``vectors`` if None."""
        if self.rerank is None:
            return whole
        asked = vectors if queries is None else queries
        part, rest = self.queries(vectors), self.rest_queries(vectors)
        return self.rerank.searched(whole, self.queries(asked) @ part.T, self.rest_queries(asked) @ rest.T)

    def queries(self, vectors: np.ndarray) -> np.ndarray:
        """Rows of whole vectors -> their parts as unit rows, zero-padded to the whole width (what the engine is
        asked with: its score of a stored vector, times ``scale``, is the part cosine)."""
        return _unit_slice(vectors, slice(None, self.dims))


def _unit_slice(vectors: np.ndarray, columns: slice) -> np.ndarray:
    """Rows of vectors -> those columns of each as a unit row, zeros elsewhere."""
    v = np.asarray(vectors, dtype=np.float32)
    out = np.zeros_like(v)
    kept = v[..., columns]
    out[..., columns] = kept / np.maximum(np.linalg.norm(kept, axis=-1, keepdims=True), 1e-12)
    return out


def judged_part(part: dict) -> JudgedPart:
    """A calibration file's ``part`` (models/calibration.py) as the domain's."""
    rerank = part.get("rerank")
    return JudgedPart(part["dims"], part["scale"], None if rerank is None else Rerank(**rerank))
