"""`dogsearch eval added-photos` on vectors made to order: dogs A and B of one look (their photos 0.95 with each
other, 0.85 across), dog C of another, and a dog of one photo (never added to itself)."""
from __future__ import annotations

import numpy as np
import pytest

from dogsearch.eval.added import add_scores, judge
from dogsearch.models.calibration import Calibration

CAL = Calibration("t", "isotonic", {"x": [0.0, 0.9, 1.0], "y": [0.0, 0.5, 1.0]}, 0.5)


def _vectors() -> tuple[np.ndarray, list[str]]:
    vectors, labels = [], []
    for d, dog in enumerate("AB"):
        for k in range(2):
            v = np.zeros(12)
            v[0], v[1 + d], v[3 + 2 * d + k] = np.sqrt(0.85), np.sqrt(0.10), np.sqrt(0.05)
            vectors.append(v)
            labels.append(dog)
    for k in range(2):
        v = np.zeros(12)
        v[8], v[9 + k] = np.sqrt(0.95), np.sqrt(0.05)
        vectors.append(v)
        labels.append("C")
    alone = np.zeros(12)
    alone[11] = 1.0
    return np.asarray([*vectors, alone], dtype=np.float64), [*labels, "S"]


def test_each_photo_is_added_to_its_own_dog_and_to_every_other():
    right, wrong, hardest = add_scores(*_vectors())
    assert right == pytest.approx([0.95] * 6)  # S has no other photo: no right add
    assert len(wrong) == 7 * 3  # each photo to each of the other three dogs
    assert hardest[:4] == pytest.approx([0.85] * 4)  # A's and B's closest other dog: each other
    assert hardest[4:6] == pytest.approx([0.0] * 2) and hardest[6] == pytest.approx(0.0)


def test_a_higher_prior_reads_the_right_adds_likely_and_the_look_alike_possible():
    c = judge(*_vectors(), CAL, priors=(0.5, 0.9))
    assert (c["dogs"], c["right_adds"], c["wrong_adds"]) == (4, 6, 21)
    # at 0.5, 0.95 (right) -> 0.75 and 0.85 (the look-alike) -> 0.47; at 0.9, 0.96 and 0.89
    at_half, at_high = c["priors"]["0.5"], c["priors"]["0.9"]
    assert at_half["right"] == {"likely": 0.0, "possible": 1.0, "unlikely": 0.0}
    assert at_half["hardest"] == {"likely": 0.0, "possible": 0.0, "unlikely": 1.0}
    assert at_high["right"] == {"likely": 1.0, "possible": 0.0, "unlikely": 0.0}
    assert at_high["hardest"] == {"likely": 0.0, "possible": round(4 / 7, 4), "unlikely": round(3 / 7, 4)}
    assert at_high["wrong"]["possible"] == round(4 / 21, 4)
