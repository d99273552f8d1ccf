"""`dogsearch eval stored-twice` on vectors made to order: dogs of individual photos, one of them ("max", which
`doubled` picks) stored as two gallery dogs, and breed photos (each another dog)."""
from __future__ import annotations

import numpy as np
import pytest

from dogsearch.eval.twice import doubled, measure, shown
from dogsearch.models.calibration import Calibration

CAL = Calibration("t", "isotonic", {"x": [0.0, 0.85, 0.95], "y": [0.0, 0.5, 1.0]}, 0.5, first={"a": 100.0, "b": -3.0})


def _photo(axis: int, k: int, dim: int = 12) -> np.ndarray:
    """A dog's photo: mostly its own direction, a little of the photo's own."""
    v = np.zeros(dim)
    v[axis], v[6 + k] = np.sqrt(0.95), np.sqrt(0.05)
    return v


def _parts():
    dogs = {"max": 0, "a": 1, "b": 2}  # max is stored twice, a and b once
    assert doubled("max") and not doubled("a") and not doubled("b")
    vectors, labels = [], []
    for name, axis in dogs.items():
        for k in range(4 if name == "max" else 3):
            vectors.append(_photo(axis, k))
            labels.append(name)
    breeds = np.stack([_photo(3 + k, k) for k in range(3)])  # three other dogs, one photo each
    return [(np.asarray(vectors, np.float32), labels, False), (breeds.astype(np.float32), ["x"] * 3, True)]


def test_a_doubled_dog_is_two_gallery_dogs_of_its_even_and_odd_photos():
    parts = _parts()
    twice, once = shown(parts), shown(parts, twice=False)
    assert twice.twice.tolist() == [True] * 4 + [False] * 9 and not once.twice.any()
    # max's first photo finds its dog twice (photo 2 as one entry, photos 1 and 3 as the other), a and b after
    assert twice.right[0, :3].tolist() == [True, True, False] and once.right[0, :2].tolist() == [True, False]
    assert twice.scores[0, :2] == pytest.approx([0.95, 0.95]) and twice.alike[0, 0, 1] == pytest.approx(0.95)
    # a gallery of 6 dogs (7 with max twice) shows that many; the rest of the ten are not there
    assert np.isnan(once.scores[0, 6:]).all() and np.isnan(twice.scores[0, 7:]).all()
    assert twice.sets.tolist() == [0] * 10 + [1] * 3


def test_measured_before_and_after():
    report = measure(_parts(), ["dogs", "breeds"], CAL)
    doubled_dog = report["some stored twice"]["dogs"]["stored twice"]
    assert doubled_dog["before"]["right"] == doubled_dog["after"]["right"] == 1.0
    assert doubled_dog["before"]["right_likely"] == 0.0 and doubled_dog["after"]["right_likely"] == 1.0
    for gallery in report.values():
        for groups in gallery.values():
            for r in groups.values():
                assert r["after"]["any_wrong_likely"] == r["before"]["any_wrong_likely"] == 0.0
    single = report["none stored twice"]["dogs"]["all"]
    assert single["after"] == single["before"] and single["before"]["right_likely"] == 1.0
