"""YOLO-pose label files (StanfordExtra's 24 dog joints) read into our keypoint layout.

A line: `class cx cy w h` then 24 x `x y v`, all normalised to the image size. v = 2: labelled and visible;
v = 0 with zero coordinates: absent; v = 0 with coordinates: labelled but occluded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dogsearch.models.pose import keypoints as K

STANFORD_JOINTS = 24


@dataclass(frozen=True)
class DogLabel:
    box: np.ndarray  # (4,) x1 y1 x2 y2 in pixels
    points: np.ndarray  # (NUM_MODEL, 2) pixels
    # 0: no target; 1: labelled (or, for eyes/neck, derived from labelled joints). Training targets.
    weight: np.ndarray  # (NUM_MODEL,)
    # True where the label says visible (v == 2) on a joint that maps one-to-one: what PCK counts.
    visible: np.ndarray  # (NUM_MODEL,) bool


class LabelError(ValueError):
    pass


def parse_label_file(path: str | Path, width: int, height: int) -> list[DogLabel]:
    dogs = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        values = line.split()
        if not values:
            continue
        if len(values) != 5 + 3 * STANFORD_JOINTS:
            raise LabelError(f"{path}:{lineno}: expected {5 + 3 * STANFORD_JOINTS} numbers, got {len(values)}")
        dogs.append(parse_label_line([float(v) for v in values], width, height))
    return dogs


def parse_label_line(values: list[float], width: int, height: int) -> DogLabel:
    cx, cy, w, h = values[1:5]
    box = np.array([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height],
                   dtype=np.float32)
    joints = np.asarray(values[5:], dtype=np.float32).reshape(STANFORD_JOINTS, 3)
    xy = joints[:, :2] * np.array([width, height], dtype=np.float32)
    has_xy = (joints[:, 0] > 0) | (joints[:, 1] > 0)
    vis = joints[:, 2] >= 2

    points = np.zeros((K.NUM_MODEL, 2), dtype=np.float32)
    weight = np.zeros(K.NUM_MODEL, dtype=np.float32)
    visible = np.zeros(K.NUM_MODEL, dtype=bool)
    for ours, theirs in K.STANFORD_DIRECT.items():
        if has_xy[theirs]:
            points[ours] = xy[theirs]
            weight[ours] = 1.0
            visible[ours] = bool(vis[theirs])
    for eye, ear in K.STANFORD_EAR_BASE.items():
        if weight[eye] == 0 and has_xy[ear] and has_xy[K.STANFORD_NOSE]:
            points[eye] = xy[ear] + K.EYE_FROM_EAR_TO_NOSE * (xy[K.STANFORD_NOSE] - xy[ear])
            weight[eye] = 1.0
    neck = K.INDEX["neck"]
    ears = [j for j in K.STANFORD_EAR_BASE.values() if has_xy[j]]
    tops = [j for j in K.STANFORD_FRONT_TOPS if has_xy[j]]
    if ears and tops:
        points[neck] = 0.5 * (xy[ears].mean(axis=0) + xy[tops].mean(axis=0))
        weight[neck] = 1.0
    return DogLabel(box=box, points=points, weight=weight, visible=visible)
