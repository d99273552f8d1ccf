"""`dogsearch eval watches`' simulation on vectors made to order: three dogs of one look (their photos score 0.95
with each other, 0.85 across dogs) and one dog unlike them. By the pair alone a watch on one of the three alerts on
the other two's photos; capped by the lead, only on its own dog's."""
from __future__ import annotations

import numpy as np

from dogsearch.eval.watches import simulate
from dogsearch.models.calibration import Calibration

CAL = Calibration("t", "isotonic", {"x": [0.0, 0.8, 1.0], "y": [0.0, 0.6, 1.0]}, 0.5, first={"a": 100.0, "b": -3.0})


def _vectors() -> tuple[np.ndarray, list[str]]:
    vectors, labels = [], []
    for d, dog in enumerate("ABC"):  # one look: a shared direction, the dog's own, the photo's own
        for k in range(2):
            v = np.zeros(14)
            v[0], v[1 + d], v[4 + 2 * d + k] = np.sqrt(0.85), np.sqrt(0.10), np.sqrt(0.05)
            vectors.append(v)
            labels.append(dog)
    for k in range(2):  # another look altogether
        v = np.zeros(14)
        v[10], v[11] = np.sqrt(0.95), np.sqrt(0.05) * (1 if k else -1)
        vectors.append(v)
        labels.append("D")
    return np.asarray(vectors, dtype=np.float32), labels


def test_the_lead_holds_back_the_look_alikes_and_keeps_the_dogs_own_photos():
    vectors, labels = _vectors()
    c = simulate([(vectors, labels, False)], CAL, 0.5)["0"]
    assert (c["watches"], c["own_arrivals"], c["other_arrivals"]) == (4, 4, 24)
    assert (c["pair"]["right_alerts"], c["pair"]["wrong_alerts"]) == (4, 12)  # each of A, B, C: the other two's
    assert (c["lead"]["right_alerts"], c["lead"]["wrong_alerts"]) == (4, 0)
    assert c["lead"]["right_share_of_alerts"] == 1.0 and c["pair"]["watches_with_a_wrong_alert"] == 0.75


def test_breed_photos_are_rivals_and_arrivals_but_get_no_watch():
    vectors, labels = _vectors()
    breed = np.zeros((2, 14), dtype=np.float32)  # two more dogs of the look, one photo each
    breed[:, 0], breed[0, 12], breed[1, 13] = np.sqrt(0.85), np.sqrt(0.15), np.sqrt(0.15)
    c = simulate([(vectors, labels, False), (breed, ["x", "x"], True)], CAL, 0.5)["0"]
    assert c["watches"] == 4 and c["other_arrivals"] == 24 + 4 * 2
    assert (c["pair"]["right_alerts"], c["pair"]["wrong_alerts"]) == (4, 12 + 3 * 2)
    assert (c["lead"]["right_alerts"], c["lead"]["wrong_alerts"]) == (4, 0)
