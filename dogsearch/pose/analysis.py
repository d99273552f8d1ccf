"""What the keypoints say about a dog: body proportions, posture, how much of the body is visible.

All measures are 2-D, in the photo's plane: a dog seen head-on looks short. Each one carries a confidence from
the scores of the keypoints it uses (0 when a needed keypoint is below the threshold).

* body length: neck to root of tail.
* leg_to_body: mean over the legs seen of (shoulder/hip -> elbow/knee -> paw) path length, over body length.
* head_to_body: nose to neck, over body length.
* tail_to_body: root of tail to tail tip, over body length (only models that predict the tail tip).
* posture from the legs' vertical reach and the back's slope, all in units of body length (image y points down).
* visible_share: the share of the 17 keypoints scoring at or above the threshold.
"""
from __future__ import annotations

import math

import numpy as np

from dogsearch.models.pose import keypoints as K

LEGS = (("left_shoulder", "left_elbow", "left_front_paw"), ("right_shoulder", "right_elbow", "right_front_paw"),
        ("left_hip", "left_knee", "left_back_paw"), ("right_hip", "right_knee", "right_back_paw"))


class _Points:
    def __init__(self, points, scores, names, threshold: float) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        self.scores = np.asarray(scores, dtype=np.float64)
        self.index = {n: i for i, n in enumerate(names)}
        self.threshold = threshold

    def ok(self, *names: str) -> bool:
        return all(n in self.index and self.scores[self.index[n]] >= self.threshold for n in names)

    def xy(self, name: str) -> np.ndarray:
        return self.points[self.index[name]]

    def score(self, *names: str) -> float:
        return float(np.mean([self.scores[self.index[n]] for n in names]))

    def dist(self, a: str, b: str) -> float:
        return float(np.linalg.norm(self.xy(a) - self.xy(b)))


def _measure(value: float | None, confidence: float) -> dict:
    if value is None or not math.isfinite(value):
        return {"value": None, "confidence": 0.0}
    return {"value": round(float(value), 4), "confidence": round(float(confidence), 4)}


def analyse(points, scores, names=K.AP10K_NAMES, *, threshold: float = 0.3, box=None) -> dict:
    p = _Points(points, scores, names, threshold)
    body = p.dist("neck", "root_of_tail") if p.ok("neck", "root_of_tail") else None
    body_conf = p.score("neck", "root_of_tail") if body else 0.0
    if body is not None and body < 1e-6:
        body = None

    legs = [leg for leg in LEGS if p.ok(*leg)]
    if body and legs:
        lengths = [p.dist(a, b) + p.dist(b, c) for a, b, c in legs]
        conf = min(body_conf, float(np.mean([p.score(*leg) for leg in legs]))) * (0.5 + 0.5 * len(legs) / 4)
        leg_to_body = _measure(float(np.mean(lengths)) / body, conf)
    else:
        leg_to_body = _measure(None, 0.0)

    if body and p.ok("nose"):
        head_to_body = _measure(p.dist("nose", "neck") / body, min(body_conf, p.score("nose")))
    else:
        head_to_body = _measure(None, 0.0)

    if body and p.ok("tail_end"):
        tail_to_body = _measure(p.dist("root_of_tail", "tail_end") / body, min(body_conf, p.score("tail_end")))
    else:
        tail_to_body = _measure(None, 0.0)

    ap = np.asarray(scores, dtype=np.float64)[: K.NUM_AP10K]
    seen = ap >= threshold
    # how clearly each keypoint falls on one side of the threshold
    certainty = np.clip(np.abs(ap - threshold) / max(threshold, 1e-6), 0.0, 1.0)
    visible = {"value": round(float(seen.mean()), 4), "confidence": round(float(certainty.mean()), 4)}

    return {
        "proportions": {"leg_to_body": leg_to_body, "head_to_body": head_to_body, "tail_to_body": tail_to_body},
        "posture": posture(p, body, box),
        "visible_share": visible,
    }


def posture(p: _Points, body: float | None, box=None) -> dict:
    scale = body
    penalty = 1.0
    if scale is None and box is not None:
        # no body length: half the box's longer side stands in, and the answer is less sure
        scale = 0.5 * max(box[2] - box[0], box[3] - box[1])
        penalty = 0.5
    if not scale:
        return {"label": "unknown", "confidence": 0.0}

    def drop(tops: tuple[str, str], paws: tuple[str, str]) -> tuple[float | None, list[str]]:
        pairs = [(t, w) for t, w in zip(tops, paws, strict=True) if p.ok(t, w)]
        if not pairs:
            return None, []
        return float(np.mean([p.xy(w)[1] - p.xy(t)[1] for t, w in pairs])) / scale, [n for pair in pairs for n in pair]

    front, front_names = drop(("left_shoulder", "right_shoulder"), ("left_front_paw", "right_front_paw"))
    rear, rear_names = drop(("left_hip", "right_hip"), ("left_back_paw", "right_back_paw"))
    tilt = (p.xy("root_of_tail")[1] - p.xy("neck")[1]) / scale if body else None
    used = front_names + rear_names + (["neck", "root_of_tail"] if body else [])
    if not used or front is None:
        return {"label": "unknown", "confidence": 0.0}
    base = p.score(*used) * penalty

    def margin(value: float, edge: float) -> float:
        return min(1.0, abs(value - edge) / 0.2)

    if front >= 0.45:
        if (rear is not None and rear < 0.3) or (tilt is not None and tilt > 0.45):
            evidence = [margin(front, 0.45)]
            evidence += [margin(rear, 0.3)] if rear is not None and rear < 0.3 else [margin(tilt, 0.45)]
            return {"label": "sitting", "confidence": round(base * float(np.mean(evidence)), 4)}
        if rear is not None and rear >= 0.45:
            evidence = [margin(front, 0.45), margin(rear, 0.45)]
            return {"label": "standing", "confidence": round(base * float(np.mean(evidence)), 4)}
        if rear is None:
            return {"label": "standing", "confidence": round(0.5 * base * margin(front, 0.45), 4)}
    if front < 0.35 and (rear is None or rear < 0.35):
        evidence = [margin(front, 0.35)] + ([margin(rear, 0.35)] if rear is not None else [])
        conf = base * float(np.mean(evidence)) * (1.0 if rear is not None else 0.6)
        return {"label": "lying", "confidence": round(conf, 4)}
    return {"label": "unknown", "confidence": round(0.3 * base, 4)}
