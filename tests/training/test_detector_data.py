"""The detector's training data: the split rule, the compositions' boxes, the CenterNet targets, the operating
point."""
from __future__ import annotations

import random
from collections import Counter

import pytest
from PIL import Image

from dogsearch.eval.detect import HELD_OUT_FROM, bucket, in_split, split_of
from dogsearch.training.detector import data as T
from dogsearch.training.detector.train import operating_point, targets


def test_the_split_is_a_hash_of_the_file_name_about_70_30():
    names = [f"n0208_{i}.jpg" for i in range(2000)]
    assert [split_of(n) for n in names] == [split_of(f"/elsewhere/{n}") for n in names]  # the folder plays no part
    shares = Counter(split_of(n) for n in names)
    assert 0.66 < shares["train"] / 2000 < 0.74
    assert all((bucket(n) >= HELD_OUT_FROM) == (split_of(n) == "held-out") for n in names)
    parts = Counter(T.part_of(n) for n in names)
    assert parts["held-out"] == shares["held-out"] and parts["fit"] > parts["calibrate"] > 0
    assert in_split("a.jpg", "all") and in_split("a.jpg", split_of("a.jpg"))
    with pytest.raises(ValueError, match="split must be one of"):
        in_split("a.jpg", "test")


def sample(size=(100, 80), boxes=((10, 20, 50, 60),), color=(200, 40, 40)) -> T.Sample:
    return T.Sample(Image.new("RGB", size, color), [tuple(float(v) for v in b) for b in boxes], "dog")


def test_mirror_flips_the_boxes():
    m = T.mirror(sample())
    assert m.boxes == [(50.0, 20.0, 90.0, 60.0)]
    assert T.mirror(m).boxes == sample().boxes


def test_a_pasted_dog_keeps_its_box_on_the_dog():
    dog = T.Sample(Image.new("RGB", (100, 80), (0, 0, 0)), [(20.0, 20.0, 60.0, 50.0)], "dog")
    dog.image.paste((255, 255, 255), (20, 20, 60, 50))  # the dog is the white rectangle
    scene = T.Sample(Image.new("RGB", (300, 200), (0, 0, 0)), [], "scene")
    out = T.paste(scene, [T.dog_patch(dog)], random.Random(1))
    [(x0, y0, x1, y1)] = out.boxes
    assert out.image.size == (300, 200) and scene.boxes == []
    assert out.image.getpixel((int((x0 + x1) / 2), int((y0 + y1) / 2))) == (255, 255, 255)
    assert out.image.getpixel((int(x0) - 2, int(y0) - 2)) == (0, 0, 0)  # just outside the box: the margin
    assert 0.12 * 300 - 1 <= (x1 - x0) * 1.3 <= 0.45 * 300 + 1  # the patch (box + 15 % a side) scaled into range


def test_a_dog_hidden_by_a_later_patch_is_not_asked_for():
    scene = T.Sample(Image.new("RGB", (100, 100)), [(0.0, 0.0, 10.0, 10.0)], "scene")
    cover = Image.new("RGB", (100, 100))
    out = T.paste(scene, [(cover, None)], random.Random(0), smallest=1.0, largest=1.0)
    assert out.boxes == []


def test_side_by_side_has_both_dogs():
    out = T.side_by_side(sample((100, 80)), sample((200, 160), boxes=((20, 40, 100, 120),)))
    assert out.image.size == (200, 80)
    assert out.boxes == [(10.0, 20.0, 50.0, 60.0), (110.0, 20.0, 150.0, 60.0)]


def test_the_training_set_holds_mirrors_and_compositions():
    dogs = [sample(), sample(color=(0, 200, 0))]
    negatives = [T.Sample(Image.new("RGB", (120, 90), (0, 0, 200)), [], "neg")]
    out = T.training_set(dogs, negatives, seed=0, pasted_per_dog=2, pairs=1, pasted_negatives=1)
    assert len(out) == 2 * 3 + 4 + 1 + 1
    assert sum(":mirror" in s.source for s in out) == 3
    assert sum(":paste" in s.source and s.boxes != [] for s in out) >= 4
    assert [s.source for s in out] == [s.source for s in T.training_set(dogs, negatives, seed=0, pasted_per_dog=2,
                                                                        pairs=1, pasted_negatives=1)]


def test_targets_peak_at_the_dog_centre():
    heat, size, offset, mask = targets([(64.0, 32.0, 128.0, 96.0)], scale=1.0, input_size=256)
    assert heat.shape == (1, 16, 16) and mask.sum() == 1 and mask[4, 6] == 1
    assert heat[0, 4, 6] == 1.0 and 0 < heat[0, 4, 5] < 1 and heat[0, 15, 15] < 1e-3
    assert size[:, 4, 6].exp().tolist() == pytest.approx([0.25, 0.25])
    assert offset[:, 4, 6].tolist() == pytest.approx([0.0, 0.0])
    empty = targets([], 1.0, 256)
    assert float(empty[0].sum()) == 0 and float(empty[3].sum()) == 0


def test_the_operating_point_makes_the_fewest_mistakes():
    dog = (0.0, 0.0, 10.0, 10.0)
    labelled = [([(dog, 0.9)], [dog]), ([(dog, 0.6), ((50.0, 50.0, 60.0, 60.0), 0.3)], [dog])]
    negatives = [[((0.0, 0.0, 5.0, 5.0), 0.4)], []]
    # between 0.4 and 0.6 every dog is found and nothing else is boxed; the middle of that interval
    assert operating_point(labelled, negatives) == pytest.approx(0.5)
