import numpy as np
import pytest

from dogsearch.models.pose import keypoints as K
from dogsearch.pose.analysis import analyse
from tests.fakes import STANDING_DOG

BOX = (100.0, 50.0, 300.0, 250.0)


def _place(rel, box=BOX):
    x1, y1, x2, y2 = box
    rel = np.asarray(rel, dtype=np.float64)
    return np.stack([x1 + rel[:, 0] * (x2 - x1), y1 + rel[:, 1] * (y2 - y1)], axis=1)


# A lying dog facing left: the legs stretch forward and back at the height of the body.
LYING_DOG = (
    (0.15, 0.45), (0.20, 0.45), (0.05, 0.52), (0.30, 0.60), (0.85, 0.65),
    (0.30, 0.70), (0.20, 0.75), (0.08, 0.78), (0.35, 0.70), (0.25, 0.76), (0.12, 0.80),
    (0.80, 0.72), (0.70, 0.78), (0.62, 0.80), (0.85, 0.72), (0.75, 0.79), (0.66, 0.82),
    (0.98, 0.70),
)


def test_standing_dog():
    scores = np.full(K.NUM_MODEL, 0.9)
    result = analyse(_place(STANDING_DOG), scores, K.MODEL_NAMES, box=BOX)
    assert result["posture"]["label"] == "standing"
    assert result["posture"]["confidence"] > 0.5
    legs = result["proportions"]["leg_to_body"]
    # body: neck (160, 110) to tail root (270, 120); legs 100 px from top to paw
    body = np.hypot(110, 10)
    assert legs["value"] == pytest.approx(100 / body, rel=1e-3)
    assert legs["confidence"] == pytest.approx(0.9)
    assert result["proportions"]["tail_to_body"]["value"] is not None
    assert result["visible_share"]["value"] == 1.0


def test_lying_dog():
    scores = np.full(K.NUM_MODEL, 0.8)
    result = analyse(_place(LYING_DOG), scores, K.MODEL_NAMES, box=BOX)
    assert result["posture"]["label"] == "lying"
    assert result["posture"]["confidence"] > 0.3


def test_sitting_dog():
    sitting = [list(p) for p in STANDING_DOG]
    for name in ("left_hip", "right_hip"):  # rear end down on the ground, next to the back paws
        sitting[K.INDEX[name]] = [sitting[K.INDEX[name]][0], 0.88]
    sitting[K.INDEX["root_of_tail"]] = [0.85, 0.9]
    result = analyse(_place(sitting), np.full(K.NUM_MODEL, 0.9), K.MODEL_NAMES, box=BOX)
    assert result["posture"]["label"] == "sitting"


def test_unseen_keypoints_give_no_value_and_no_confidence():
    scores = np.full(K.NUM_AP10K, 0.9)
    scores[K.INDEX["root_of_tail"]] = 0.1  # no body length without the root of the tail
    result = analyse(_place(STANDING_DOG[: K.NUM_AP10K]), scores, K.AP10K_NAMES)
    for measure in result["proportions"].values():
        assert measure == {"value": None, "confidence": 0.0}
    assert result["visible_share"]["value"] == pytest.approx(16 / 17, abs=1e-4)
    # the AP-10K-only model has no tail tip
    assert result["posture"]["label"] in ("standing", "unknown")


def test_nothing_seen_is_unknown():
    result = analyse(np.zeros((K.NUM_AP10K, 2)), np.zeros(K.NUM_AP10K), K.AP10K_NAMES, box=BOX)
    assert result["posture"] == {"label": "unknown", "confidence": 0.0}
    assert result["visible_share"]["value"] == 0.0
