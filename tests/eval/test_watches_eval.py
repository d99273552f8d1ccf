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


def _fused_gallery(d5: float, z: float) -> tuple[np.ndarray, list[str]]:
    """A fusion's gallery (a 14-d ViT part, then a 2-d breed part, weighing 1): the watched dog A (its second photo
    0.95 from its first on the ViT part, of another breed part); D1, D2 of A's breed part (the whole vector ranks them
    first among the others, ViT 0.80); D3-D10 of a near breed part (ViT 0.83, D5 `d5`); Z of another breed part
    (ranked eleventh by the whole vector, not among the ten a search shows; ViT `z`)."""
    b0, b1, near = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.85, np.sqrt(1 - 0.85 ** 2)])
    rows = [("A", 1.0, b0), ("A", 0.95, b1), ("D1", 0.80, b0), ("D2", 0.80, b0)]
    rows += [(f"D{n}", d5 if n == 5 else 0.83, near) for n in range(3, 11)] + [("Z", z, b1)]
    vectors = []
    for k, (_, cos, breed) in enumerate(rows):
        vit = np.zeros(14)
        vit[0] = cos
        if k:
            vit[k] = np.sqrt(1 - cos ** 2)
        vectors.append(np.concatenate([vit, breed]) / np.sqrt(2))
    return np.asarray(vectors, dtype=np.float32), [dog for dog, _, _ in rows]


def test_a_part_calibration_judges_against_the_best_part_of_the_dogs_the_whole_vector_shows():
    """A fusion's watch (dogsearch/core/judged.py): probabilities of ViT-part cosines, capped by the lead over the
    best ViT-part score among the ten dogs a search with the watch's photo shows, which the whole vector ranks."""
    part = Calibration("t", "isotonic", CAL.params, 0.5, first=CAL.first, part={"dims": 14, "scale": float(np.sqrt(2))})

    def right_alerts(d5: float, z: float) -> int:
        c = simulate([(*_fused_gallery(d5, z), False)], part, 0.5)["0"]
        assert (c["watches"], c["own_arrivals"], c["other_arrivals"]) == (1, 1, 11)
        return c["lead"]["right_alerts"]

    # Z is nearer than A's own photo on the part (0.96), but no search shows it: A's photo leads D5 by 0.05 and alerts
    assert right_alerts(0.90, 0.96) == 1
    # D5, fifth by the whole vector, is 0.02 behind on the part: not the first two, but shown, so no alert
    assert right_alerts(0.93, 0.50) == 0
    whole = simulate([(*_fused_gallery(0.90, 0.96), False)], CAL, 0.5)["0"]  # the same map read off the whole vector
    assert whole["pair"] != simulate([(*_fused_gallery(0.90, 0.96), False)], part, 0.5)["0"]["pair"]
