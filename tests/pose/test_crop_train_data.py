import numpy as np
import pytest
import torch

from dogsearch.models.pose import crop as C
from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.net import decode_heatmaps
from dogsearch.training.pose.data import gaussian_targets, is_heldout


@pytest.mark.parametrize("flip", [False, True])
def test_affine_round_trip(flip):
    m = C.box_affine((10, 20, 110, 70), 160, scale=1.2, rotation_deg=25, shift=(0.05, -0.03), flip=flip)
    points = np.array([[10.0, 20.0], [60.0, 45.0], [110.0, 70.0]])
    back = C.apply(C.invert(m), C.apply(m, points))
    assert back == pytest.approx(points)
    centre = C.apply(C.box_affine((10, 20, 110, 70), 160), [[60.0, 45.0]])[0]
    assert centre == pytest.approx([80, 80])


def test_heatmap_target_decodes_to_its_point():
    points = np.array([[37.0, 90.0], [500.0, 5.0]])  # the second is outside the crop
    target, weight = gaussian_targets(points, np.ones(2, np.float32), 160, 4, 2.0)
    assert weight.tolist() == [1.0, 0.0]
    logits = torch.log(torch.from_numpy(target) + 1e-6)[None]  # a model that predicts the target exactly
    coords, scores = decode_heatmaps(logits)
    assert coords[0, 0].tolist() == pytest.approx([37.0, 90.0], abs=1.5)
    assert scores[0, 0] > 0.8  # a sharp peak
    assert scores[0, 1] < 0.05  # an empty map: a flat guess


def test_split_is_deterministic_and_about_a_fifth():
    ids = [f"n02088364_{i}" for i in range(2000)]
    held = [i for i in ids if is_heldout(i)]
    assert held == [i for i in ids if is_heldout(i)]
    assert 0.15 < len(held) / len(ids) < 0.25


def test_flip_permutation_swaps_left_and_right():
    perm = K.flip_permutation()
    assert K.MODEL_NAMES[perm[K.INDEX["left_hip"]]] == "right_hip"
    assert K.MODEL_NAMES[perm[K.INDEX["nose"]]] == "nose"
    assert sorted(perm) == list(range(K.NUM_MODEL))


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_training_crops_come_from_the_detector_box_when_asked(monkeypatch, share):
    from pathlib import Path

    from dogsearch.training.pose import data as D

    fixtures = Path(__file__).parents[1] / "fixtures" / "pose"
    item = D.Item("n02093754_175", fixtures / "images" / "n02093754_175.jpg",
                  fixtures / "labels" / "n02093754_175.txt")
    labelled = D.PoseDataset([item]).samples[0][1].box
    detected = labelled + np.array([-30, -20, 10, 5], dtype=np.float32)
    data = D.PoseDataset([item], augment=True, detected={(item.image_id, 0): detected}, detected_share=share)
    used = []
    real = C.box_affine
    monkeypatch.setattr(C, "box_affine", lambda box, size, **kw: used.append((np.asarray(box), kw)) or
                        real(box, size, **kw))
    for _ in range(6):
        x, target, weight = data[0]
        assert x.shape == (3, 160, 160) and target.shape[0] == K.NUM_MODEL
    for box, kw in used:
        if share:  # the detector's box as the service crops it: its own error is the jitter
            assert np.array_equal(box, detected) and kw["scale"] == 1.0 and kw["shift"] == (0.0, 0.0)
        else:
            assert np.array_equal(box, labelled)
