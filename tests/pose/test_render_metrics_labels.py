import io

import numpy as np
import pytest
from PIL import Image

from dogsearch.models.pose import keypoints as K
from dogsearch.pose.labels import parse_label_line
from dogsearch.pose.metrics import PckCounter
from dogsearch.pose.render import render_png


def _dog(box, points, score=0.9):
    return {"box": list(box), "score": 0.8,
            "keypoints": [{"name": n, "x": float(x), "y": float(y), "score": score}
                          for n, (x, y) in zip(K.AP10K_NAMES, points, strict=True)]}


def test_render_is_a_png_of_the_photo_size_with_the_skeleton_drawn():
    photo = Image.new("RGB", (320, 200), (0, 0, 0))
    points = [(40 + 15 * i, 60 + 5 * i) for i in range(K.NUM_AP10K)]
    png = render_png(photo, [_dog((20, 20, 300, 180), points)])
    out = Image.open(io.BytesIO(png))
    assert out.format == "PNG" and out.size == (320, 200)
    arr = np.asarray(out.convert("RGB"))
    x, y = points[K.INDEX["nose"]]
    assert arr[y, x].sum() > 0  # a keypoint was drawn where the photo was black
    assert arr[20, 150].sum() > 0  # the box's top edge


def test_render_skips_keypoints_below_threshold():
    photo = Image.new("RGB", (100, 100), (0, 0, 0))
    png = render_png(photo, [_dog((0, 0, 0, 0), [(50, 50)] * K.NUM_AP10K, score=0.1)], threshold=0.3)
    assert np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))[50, 50].sum() == 0


def test_pck_against_hand_computed_value():
    counter = PckCounter(alpha=0.1)
    box = (0, 0, 200, 100)  # longer side 200: correct within 20 px
    truth = np.zeros((K.NUM_AP10K, 2))
    predicted = truth.copy()
    predicted[0] = (19, 0)  # hit
    predicted[1] = (15, 15)  # 21.2 px: miss
    predicted[2] = (0, 20)  # exactly 20: hit
    predicted[3] = (100, 100)  # miss, but not labelled visible: not counted
    visible = np.zeros(K.NUM_AP10K, dtype=bool)
    visible[[0, 1, 2, 4]] = True  # joint 4 predicted exactly: hit
    counter.add(predicted, truth, visible, box)
    counter.add(None, truth, visible, box)  # a dog not found: 4 misses
    assert counter.pck == pytest.approx(3 / 8)
    per_joint = counter.per_joint()
    assert per_joint["left_eye"] == 0.5 and per_joint["right_eye"] == 0.0 and per_joint["neck"] is None


def test_label_mapping_from_stanford_extra():
    joints = [[0.0, 0.0, 0.0] for _ in range(24)]
    joints[16] = [0.2, 0.5, 2]  # nose
    joints[14] = [0.4, 0.3, 2]  # left ear base
    joints[2] = [0.5, 0.6, 2]  # front-left top -> left_shoulder
    joints[12] = [0.9, 0.5, 0]  # tail start, labelled but occluded
    values = [0, 0.5, 0.5, 0.8, 0.6] + [v for j in joints for v in j]
    dog = parse_label_line(values, 200, 100)
    assert dog.box.tolist() == pytest.approx([20, 20, 180, 80])
    assert dog.points[K.INDEX["nose"]].tolist() == pytest.approx([40, 50])
    assert dog.points[K.INDEX["left_shoulder"]].tolist() == pytest.approx([100, 60])
    assert dog.visible[K.INDEX["nose"]] and not dog.visible[K.INDEX["root_of_tail"]]
    assert dog.weight[K.INDEX["root_of_tail"]] == 1.0  # occluded but placed: still a training target
    # eye derived: 40 % from the ear base (80, 30) to the nose (40, 50); never counted as visible
    assert dog.points[K.INDEX["left_eye"]].tolist() == pytest.approx([64, 38])
    assert not dog.visible[K.INDEX["left_eye"]]
    # neck: halfway between the ear base and the front leg's top
    assert dog.points[K.INDEX["neck"]].tolist() == pytest.approx([90, 45])
    assert dog.weight[K.INDEX["right_eye"]] == 0.0
