"""The detector's training data: the split rule, the compositions' boxes, the CenterNet targets, the operating
point."""
from __future__ import annotations

import random
from collections import Counter

import numpy as np
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
    heat, size, offset, mask, box = targets([(64.0, 32.0, 128.0, 96.0)], scale=1.0, input_size=256)
    assert heat.shape == (1, 16, 16) and mask.sum() == 1 and mask[4, 6] == 1
    assert heat[0, 4, 6] == 1.0 and 0 < heat[0, 4, 5] < 1 and heat[0, 15, 15] < 1e-3
    assert size[:, 4, 6].exp().tolist() == pytest.approx([0.25, 0.25])
    assert offset[:, 4, 6].tolist() == pytest.approx([0.0, 0.0])
    assert box[:, 4, 6].tolist() == [64.0, 32.0, 128.0, 96.0] and float(box.abs().sum()) == 64 + 32 + 128 + 96
    empty = targets([], 1.0, 256)
    assert float(empty[0].sum()) == 0 and float(empty[3].sum()) == 0


def test_a_spread_target_regresses_the_box_around_its_centre_cell_too():
    heat, size, offset, mask, box = targets([(64.0, 32.0, 128.0, 96.0)], scale=1.0, input_size=256, spread=1)
    assert mask.sum() == 9 and mask[3:6, 5:8].sum() == 9 and heat[0, 4, 6] == 1.0 and heat.eq(1).sum() == 1
    assert offset[:, 3, 7].tolist() == pytest.approx([-1.0, 1.0])  # the centre (6, 4) seen from cell (7, 3)
    assert size[:, 3, 7].exp().tolist() == pytest.approx([0.25, 0.25]) and box[:, 5, 5].tolist() == [64, 32, 128, 96]
    # two dogs side by side: a cell between them belongs to the dog whose centre cell is nearer
    _, _, offset, mask, box = targets([(0.0, 0.0, 16.0, 32.0), (32.0, 0.0, 64.0, 32.0)], 1.0, 64, spread=2)
    assert mask.sum() == 16  # centre cells (0, 1) and (3, 1): every cell of the 4 x 4 grid is within 2 of one
    assert box[:, 0, 1].tolist() == [0, 0, 16, 32] and box[:, 0, 2].tolist() == [32, 0, 64, 32]


def test_the_quality_target_is_the_iou_of_each_cells_box_with_its_dog():
    import torch

    from dogsearch.training.detector.train import box_iou_map, inside_any, quality_target

    truth = torch.tensor([[[0.0, 0.0, 32.0, 32.0], [0.0, 0.0, 0.0, 0.0]]])  # one dog, one empty pad
    boxes = torch.zeros(1, 4, 2, 2)
    boxes[0, :, 0, 0] = torch.tensor([0.0, 0.0, 32.0, 32.0])  # the dog's box
    boxes[0, :, 0, 1] = torch.tensor([0.0, 0.0, 16.0, 32.0])  # its front half
    boxes[0, :, 1, 0] = torch.tensor([40.0, 40.0, 48.0, 48.0])  # beside it
    boxes[0, :, 1, 1] = torch.tensor([16.0, 0.0, 48.0, 32.0])  # half on it, half off
    target = quality_target(boxes, truth)
    assert target[0].flatten().tolist() == pytest.approx([1.0, 0.5, 0.0, 1 / 3])
    assert quality_target(boxes, torch.zeros(1, 1, 4)).abs().sum() == 0  # no dog: 0 everywhere
    giou = box_iou_map(boxes, truth[:, 0, :, None, None].expand(-1, -1, 2, 2), generalized=True)
    assert giou[0, 1, 0] == pytest.approx(0 - (48 * 48 - 64 - 1024) / (48 * 48))  # apart: below 0
    assert inside_any(truth, 3)[0].tolist() == [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_a_quality_output_learnt_on_a_trained_head_keeps_its_boxes():
    import torch

    from dogsearch.models import dogdet as D
    from dogsearch.training.detector.train import fit_quality, quality_target

    torch.manual_seed(0)
    base = D.CenterHead(width=8).eval()
    f16, f32 = torch.randn(16, D.F16_CHANNELS, 4, 4), torch.randn(16, D.F32_CHANNELS, 2, 2)
    truth = torch.tensor([[[8.0, 8.0, 48.0, 56.0]]]).repeat(16, 1, 1)
    head = fit_quality(base, f16, f32, truth, epochs=30, batch_size=8, lr=0.05, seed=0, log=lambda _: None)
    with torch.no_grad():
        before, after = base(f16, f32), head(f16, f32)
        target = quality_target(D.box_map(after[1], after[2], 64), truth)
        untrained = D.CenterHead(width=8, quality=True).quality(base.features(f16, f32))
    assert len(after) == 4 and all(torch.equal(a, b) for a, b in zip(before, after[:3], strict=False))
    error = (torch.sigmoid(after[3][:, 0]) - target).abs().mean()
    assert error < 0.5 * (torch.sigmoid(untrained[:, 0]) - target).abs().mean()


def test_the_operating_point_makes_the_fewest_mistakes():
    dog = (0.0, 0.0, 10.0, 10.0)
    labelled = [([(dog, 0.9)], [dog]), ([(dog, 0.6), ((50.0, 50.0, 60.0, 60.0), 0.3)], [dog])]
    negatives = [[((0.0, 0.0, 5.0, 5.0), 0.4)], []]
    # between 0.4 and 0.6 every dog is found and nothing else is boxed; the middle of that interval
    assert operating_point(labelled, negatives) == pytest.approx(0.5)


def test_the_pseudo_label_draw_keeps_to_the_fit_part_and_leaves_labelled_photos_out(tmp_path):
    from dogsearch.training.detector.pseudo import draw

    for breed in ("a", "b"):
        (tmp_path / breed).mkdir()
        for i in range(40):
            Image.new("RGB", (8, 8)).save(tmp_path / breed / f"{breed}{i}.jpg")
    labelled = {"a1.jpg", "b2.jpg"}
    drawn = draw([tmp_path / "a", tmp_path / "b"], labelled, 1000)
    assert drawn and all(T.part_of(p) == "fit" for p in drawn) and not labelled & {p.name for p in drawn}
    assert {p.parent.name for p in drawn} == {"a", "b"}
    assert draw([tmp_path / "b", tmp_path / "a"], labelled, 5) == drawn[:5]  # not the folders' order


def _teacher(scored):
    """A trained detector whose candidates and verified scores are given: its own ``detect`` answers from them."""
    from dogsearch.models import dogdet as D

    config = {"input_size": 64, "operating_point": {"raw": 0.5, "verified": 0.5, "candidate": 0.05},
              "suppress_inside": 0.6}
    teacher = D.CenterNetDetector(head=D.CenterHead(width=8), config=config, classifier=object())
    teacher.candidates_many = lambda images: [[(box, 0.9) for box, _ in scored] for _ in images]
    teacher._scored = lambda images, found: [[(box, s, None) for box, s in scored[: len(f)]] for f in found]
    return teacher


def test_a_photo_is_pseudo_labelled_only_where_the_teacher_is_sure_of_every_box():
    from dogsearch.training.detector.pseudo import label

    image = Image.new("RGB", (100, 100))
    dog, other, part = (0, 0, 50, 50), (60, 60, 100, 100), (0, 0, 30, 30)
    assert label(_teacher([(dog, 0.9), (other, 0.1)]), image, high=0.8, low=0.3) == [dog]
    assert label(_teacher([(dog, 0.9), (other, 0.5)]), image, high=0.8, low=0.3) is None  # unsure of one
    assert label(_teacher([(other, 0.2)]), image, high=0.8, low=0.3) is None  # no dog it is sure of
    assert label(_teacher([(dog, 0.9), (other, 0.85)]), image, high=0.8, low=0.3) == [dog, other]
    # a part inside the dog is dropped as at inference, whatever its score
    assert label(_teacher([(dog, 0.9), (part, 0.85)]), image, high=0.8, low=0.3) == [dog]
    assert label(_teacher([(dog, 0.9), (part, 0.5)]), image, high=0.8, low=0.3) == [dog]


def test_the_calibration_rates_count_boxes_as_eval_detect_does():
    from dogsearch.training.detector.train import rates

    dog, other = (0, 0, 10, 10), (20, 20, 30, 30)
    answered = [[(dog, 0.9), ((0, 0, 10, 9), 0.8)],  # the dog, then the same dog again: a wrong box
                [],  # a missed dog
                [(other, 0.7)]]  # a photo without a dog given a box
    got = rates(answered, [[dog], [other], []])
    assert got == {"precision": 0.5, "recall": 0.5, "fp_rate": 1.0}


def test_cross_validation_chooses_each_folds_point_on_the_other_folds():
    from dogsearch.training.detector.rescore import cross_validate

    def record(fold, dog):  # a dog photo: its box found with a high score, a stray box with a low one
        right = {"box": [0, 0, 10, 10], "heat": 0.9, "p": 0.95}
        stray = {"box": [40, 40, 50, 50], "heat": 0.2, "p": 0.3}
        return {"fold": fold, "truth": [[0, 0, 10, 10]] if dog else [],
                "candidates": [right, stray] if dog else [stray]}

    records = [record(fold, dog) for fold in (0, 1) for dog in (True, True, False)]
    weighed = cross_validate(records, p_weight=0.25)
    assert weighed["verified"] == {"mistakes": 0, "precision": 1.0, "recall": 1.0, "fp_rate": 0.0}
    assert weighed["rescored"]["recall"] == 1.0 and weighed["rescored"]["fp_rate"] == 0.0


def test_the_operating_point_sweep_matches_answering_every_photo_at_every_cut():
    """The sweep looks each photo's mistakes up between its own scores; it must choose what answering every photo
    again at every cut chooses, suppression of parts included (a part reappears when its dog is cut away)."""
    from dogsearch.training.detector import rescore as RS
    from dogsearch.training.detector.train import best_threshold

    rng = np.random.default_rng(7)

    def record():
        dogs = [[x, 10, x + 30, 50] for x in (0, 60)[:rng.integers(0, 3)]]
        found = [{"box": [*dog[:3], dog[3] - 20 if part else dog[3]], "heat": float(rng.uniform(0.05, 1)),
                  "p": float(rng.uniform(0, 1))} for dog in dogs for part in (False, True)]
        found += [{"box": [120, 0, 150, 40], "heat": float(rng.uniform(0.05, 1)), "p": float(rng.uniform(0, 1))}
                  for _ in range(rng.integers(0, 2))]
        return {"truth": dogs, "candidates": sorted(found, key=lambda c: -c["heat"])}

    records = [record() for _ in range(60)]
    for params in ({"candidates": 5, "verified": 0.25},
                   {"candidates": 5, "features": ["heat", "p", "top"], "weights": [3.0, 2.0, 0.5], "bias": -3.0}):
        every = sorted({s for found in RS.answers(records, params, 0.6, 0.0) for _, s in found})
        cuts = [0.0] + [(a + b) / 2 for a, b in zip(every, every[1:], strict=False)] + [1.0]
        brute = best_threshold(cuts, [RS.mistakes(records, RS.answers(records, params, 0.6, t)) for t in cuts])
        assert RS.operating_point(records, params, 0.6) == brute
