"""A search with several photos of one dog: how their vectors score an entry. One definition, used by the gallery's
search (through the vector engine) and by `dogsearch eval identity --query-photos` (on a matrix), so the figures
published are those of the rule the service runs (docs/lost-and-found.md, "Several photos of the lost dog").

* ``mean``: the mean of the photos' cosines with the entry. It ranks as the cosine with the photos' mean vector
  (the mean differs from its unit vector only by its length, the same for every entry), so the engine is asked
  once, with that unit vector, and its cosines are scaled back by the length: the score stays on the scale of one
  photo's cosine, which the same-dog calibration reads. (The sum of the similarities ranks the same.)
* ``max``: the best of the photos' cosines with the entry: one engine query a photo, merged.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

Rule = Literal["mean", "max"]
RULES: tuple[Rule, ...] = ("mean", "max")


def mean_query(vectors: np.ndarray) -> tuple[np.ndarray, float]:
    """The unit vector of the photos' mean vector, and the mean's length: an entry's cosine with the unit vector
    times the length is the mean of its cosines with the photos."""
    mean = np.asarray(vectors, dtype=np.float32).mean(axis=0)
    length = float(np.linalg.norm(mean))
    if length < 1e-6:  # photos pointing every way at once: no direction in common
        raise ValueError("the query photos' vectors cancel out")
    return mean / length, length


def combined_scores(queries: np.ndarray, entries: np.ndarray, rule: Rule) -> np.ndarray:
    """The score of each entry (rows of unit vectors) for a query of several photos (rows of unit vectors)."""
    queries = np.asarray(queries, dtype=np.float32)
    entries = np.asarray(entries, dtype=np.float32)
    if rule == "mean":
        unit, length = mean_query(queries)
        return entries @ unit * length
    if rule == "max":
        return (entries @ queries.T).max(axis=1)
    raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
