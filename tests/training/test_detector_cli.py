"""`dogsearch train detector` end to end on a few made-up photos: it writes a delta the registry's detector loads."""
from __future__ import annotations

import json
import re
from itertools import count

import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.models import dogdet as D
from dogsearch.training.detector.data import part_of


def _names(part: str, n: int, suffix: str) -> list[str]:
    found = (f"x{i}{suffix}" for i in count())
    return [name for name, _ in zip((f for f in found if part_of(f) == part), range(n), strict=False)]


def _photos(tmp_path):
    """Two made-up dog photos and two without a dog in each part of the split."""
    dogs, negatives = tmp_path / "dogs", tmp_path / "negatives"
    (dogs / "images").mkdir(parents=True)
    (dogs / "labels").mkdir()
    negatives.mkdir()
    for part in ("fit", "calibrate", "held-out"):
        for name in _names(part, 2, ".jpg"):
            image = Image.new("RGB", (96, 64), (30, 90, 30))
            image.paste((200, 150, 90), (20, 10, 70, 50))
            image.save(dogs / "images" / name)
            # YOLO-pose: class cx cy w h (normalised), then StanfordExtra's 24 joints, unlabelled here
            (dogs / "labels" / f"{name[:-4]}.txt").write_text("0 0.4688 0.4688 0.5208 0.625" + " 0 0 0" * 24 + "\n")
        for name in _names(part, 2, ".png"):
            Image.new("RGB", (80, 80), (20, 20, 160)).save(negatives / name)
    return dogs, negatives


def test_train_detector_cli_writes_a_delta_the_detector_loads(tmp_path, capsys):
    dogs, negatives = _photos(tmp_path)
    out = tmp_path / "detector-test"
    assert cli.main(["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"),
                     "--negatives", str(negatives), "--out", str(out), "--epochs", "1", "--input-size", "64",
                     "--width", "8", "--batch-size", "4", "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert printed["operating_point"] == config["operating_point"]
    assert config["data"]["fit_dog_photos"] == 2 and config["data"]["fit_negative_photos"] == 2
    detector = D.CenterNetDetector(out, verify=False)
    assert detector.input_size == 64 and detector.min_score == config["operating_point"]["raw"]
    assert config["suppress_inside"] == printed["suppress_inside"] == detector.inside == 0.6
    assert isinstance(detector.detect(Image.new("RGB", (96, 64))), list)


def test_train_detector_with_a_quality_output_chooses_its_score_on_the_calibration_photos(tmp_path, capsys):
    from dogsearch.training.detector.train import SCORE_GRID

    dogs, negatives = _photos(tmp_path)
    out = tmp_path / "detector-quality"
    assert cli.main(["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"),
                     "--negatives", str(negatives), "--out", str(out), "--epochs", "1", "--input-size", "64",
                     "--width", "8", "--batch-size", "4", "--threads", "1", "--quality", "--box-loss", "giou"]) == 0
    printed = json.loads(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["quality"] is True and printed["score"] == config["score"]
    assert (config["score"]["quality"], config["score"]["p"]) in SCORE_GRID
    assert "GIoU" in config["recipe"]["loss"] and "quality" in config["recipe"]["loss"]
    detector = D.CenterNetDetector(out, verify=False)
    assert detector.head.quality is not None and detector.quality_weight == config["score"]["quality"]
    assert isinstance(detector.detect(Image.new("RGB", (96, 64))), list)
    # a quality output learnt anew on that trained head keeps the head's other weights
    again = tmp_path / "detector-quality-of"
    assert cli.main(["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"),
                     "--negatives", str(negatives), "--out", str(again), "--epochs", "1", "--input-size", "64",
                     "--width", "8", "--batch-size", "4", "--threads", "1", "--quality-of", str(out)]) == 0
    capsys.readouterr()
    base, kept = D.load_weights(out)[1], D.load_weights(again)[1]
    assert set(kept) == set(base) and not kept["quality.weight"].equal(base["quality.weight"])
    assert all(kept[k].equal(v) for k, v in base.items() if not k.startswith("quality."))
    assert "kept" in json.loads((again / "config.json").read_text())["recipe"]["loss"]


def test_train_detector_with_several_seeds_writes_one_head_that_averages_theirs(tmp_path, capsys):
    import torch

    dogs, negatives = _photos(tmp_path)
    common = ["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"), "--negatives",
              str(negatives), "--epochs", "1", "--input-size", "64", "--width", "8", "--batch-size", "4",
              "--threads", "1", "--quality"]
    for seed in ("0", "1"):
        assert cli.main([*common, "--out", str(tmp_path / f"seed{seed}"), "--seed", seed]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "both"), "--seed", "0", "1"]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "both" / "config.json").read_text())
    assert (config["width"], config["groups"], config["recipe"]["seeds"]) == (16, 2, [0, 1])
    both = D.CenterNetDetector(tmp_path / "both", verify=False)
    singles = [D.CenterNetDetector(tmp_path / f"seed{s}", verify=False).head for s in "01"]
    f16, f32 = torch.randn(1, D.F16_CHANNELS, 4, 4), torch.randn(1, D.F32_CHANNELS, 2, 2)
    with torch.no_grad():
        mean = [torch.stack(o).mean(0) for o in zip(*(h(f16, f32) for h in singles), strict=True)]
        for got, want in zip(both.head(f16, f32), mean, strict=True):
            assert torch.allclose(got, want, atol=1e-5)
    assert isinstance(both.detect(Image.new("RGB", (96, 64))), list)


def test_train_detector_refuses_a_share_outside_0_1(tmp_path):
    with pytest.raises(SystemExit, match="--suppress-inside"):
        cli.main(["train", "detector", "--out", str(tmp_path / "x"), "--suppress-inside", "1.5"])


def test_train_detector_refuses_several_seeds_for_a_quality_learnt_on_one_head(tmp_path):
    with pytest.raises(SystemExit, match="give one --seed"):
        cli.main(["train", "detector", "--out", str(tmp_path / "x"), "--seed", "0", "1", "--quality-of",
                  str(D.DEFAULT_WEIGHTS_DIR)])


def test_train_detector_rescore_fits_on_a_dump_and_writes_the_config(tmp_path, capsys):
    import shutil

    weights = tmp_path / "delta"
    shutil.copytree(D.DEFAULT_WEIGHTS_DIR, weights)
    config = json.loads((weights / "config.json").read_text())
    del config["rescore"], config["operating_point"]["rescored"]
    (weights / "config.json").write_text(json.dumps(config))
    dog, other = [0.0, 0.0, 100.0, 80.0], [120.0, 0.0, 200.0, 80.0]

    def photo(truth, *candidates):
        return {"source": "x", "truth": truth,
                "candidates": [{"box": box, "heat": heat, "p": p} for box, heat, p in candidates]}

    # dogs: the dog's box is right and its crop a dog whatever its heat; the other box is no dog
    records = [photo([dog], (dog, heat, 0.97), (other, 0.3, 0.1)) for heat in (0.1, 0.2, 0.4, 0.7)]
    records += [photo([], (other, heat, p)) for heat, p in ((0.6, 0.05), (0.3, 0.2), (0.1, 0.02))]
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps(records))
    assert cli.main(["train", "detector-rescore", "--weights", str(weights), "--dump", str(dump)]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((weights / "config.json").read_text())
    assert written["rescore"] == printed["rescore"] and written["operating_point"]["rescored"] == printed[
        "operating_point"]
    assert printed["mistakes"] == 0 and printed["dogs"] == 4  # every dog found, nothing else boxed
    detector = D.CenterNetDetector(weights, rescore=True)  # the registry's detector loads it
    assert detector.rescore == written["rescore"] and detector.min_score == printed["operating_point"]
    assert detector.name != D.CenterNetDetector(D.DEFAULT_WEIGHTS_DIR, rescore=True).name


def test_train_detector_adds_photos_its_teacher_boxes(tmp_path, capsys):
    dogs, negatives = _photos(tmp_path)
    common = ["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"), "--negatives",
              str(negatives), "--epochs", "1", "--input-size", "64", "--width", "8", "--batch-size", "4",
              "--threads", "1"]
    assert cli.main([*common, "--out", str(tmp_path / "teacher"), "--epochs", "30"]) == 0  # one that finds them
    unboxed = tmp_path / "unboxed"
    unboxed.mkdir()
    # 3 to draw; the calibration photos and a copy of a labelled one stay out
    for name in _names("fit", 3, ".jpeg") + _names("calibrate", 2, ".jpeg") + _names("fit", 1, ".jpg"):
        image = Image.new("RGB", (96, 64), (30, 90, 30))
        image.paste((200, 150, 90), (10, 10, 60, 40))
        image.save(unboxed / name)
    # thresholds of 0: every candidate of the teacher is a sure dog, so the made-up photos are kept
    assert cli.main([*common, "--out", str(tmp_path / "student"), "--pseudo-photos", "10", "--pseudo",
                     str(unboxed), "--teacher", str(tmp_path / "teacher"), "--pseudo-high", "0",
                     "--pseudo-low", "0", "--cache-dir", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    pseudo = config["data"]["pseudo_labelled"]
    assert (pseudo["drawn"], pseudo["kept"], pseudo["left_out"]) == (3, 3, 0) and pseudo["dogs"] >= 3
    assert pseudo["teacher"] == D.CenterNetDetector(tmp_path / "teacher").name
    assert config["data"]["fit_dog_photos"] == 2  # the labelled ones; the kept ones are counted apart
    assert list((tmp_path / "cache").glob("pseudo-*.json"))


def test_train_detector_refuses_pseudo_labels_without_a_teacher(tmp_path):
    with pytest.raises(SystemExit, match="--teacher"):
        cli.main(["train", "detector", "--out", str(tmp_path / "x"), "--pseudo-photos", "5", "--teacher",
                  str(tmp_path / "none")])


def test_train_detector_with_folds_fits_every_training_photo_and_chooses_on_out_of_fold_scores(tmp_path, capsys):
    dogs, negatives = _photos(tmp_path)
    out = tmp_path / "detector-folds"
    assert cli.main(["train", "detector", "--dogs", str(dogs), "--images", str(dogs / "images"),
                     "--negatives", str(negatives), "--out", str(out), "--epochs", "1", "--input-size", "64",
                     "--width", "8", "--batch-size", "4", "--threads", "1", "--folds", "2", "--flip", "choose",
                     "--dump-out-of-fold", str(tmp_path / "oof.json")]) == 0
    logged = capsys.readouterr()
    printed, config = json.loads(logged.out), json.loads((out / "config.json").read_text())
    # the calibration part is fitted on too; each fold's photos were scored by a head fitted on the other fold
    assert config["data"]["fit_dog_photos"] == 4 and config["data"]["fit_negative_photos"] == 4
    scored = [int(n) for n in re.findall(r"fold \d/2: (\d+) photos scored", logged.err)]
    assert len(scored) == 2 and sum(scored) == 8  # every photo once, out of fold
    assert "2 folds' out-of-fold scores of 4 dog photos, 4 without a dog" in logged.err
    assert printed["folds"] == config["folds"] == 2 and "cross-fitting" in config["recipe"]["split"]
    both = config["flip_test_mistakes"]
    assert printed["flip"] == config.get("flip", False) == (both["on"] < both["off"])
    assert config["calibration_mistakes"] == min(both.values())
    rates = printed["calibration_rates"]
    assert rates == config["calibration_rates"] and all(0 <= rates[k] <= 1 for k in ("precision", "recall", "fp_rate"))
    detector = D.CenterNetDetector(out)
    assert detector.flip == printed["flip"] and detector.min_score == config["operating_point"]["verified"]
    assert isinstance(detector.detect(Image.new("RGB", (96, 64))), list)
    # each photo's candidates as its fold's heads saw them, for the re-scoring to be weighed out of fold
    records = json.loads((tmp_path / "oof.json").read_text())
    assert sorted(r["fold"] for r in records) == sorted(
        int(k) - 1 for k, n in re.findall(r"fold (\d)/2: (\d+) photos scored", logged.err) for _ in range(int(n)))
    assert cli.main(["train", "detector-rescore", "--cross-validate", "--dump", str(tmp_path / "oof.json"),
                     "--weights", str(out)]) == 0
    weighed = json.loads(capsys.readouterr().out)
    for method in ("verified", "rescored"):
        assert set(weighed[method]) == {"mistakes", "precision", "recall", "fp_rate"}
        assert 0 <= weighed[method]["mistakes"] <= 8 + sum(len(r["candidates"]) for r in records)


def test_train_detector_refuses_folds_with_pseudo_labels_or_one_fold(tmp_path):
    for extra in (["--folds", "1"], ["--folds", "3", "--pseudo-photos", "10"],
                  ["--dump-out-of-fold", str(tmp_path / "oof.json")]):
        with pytest.raises(SystemExit, match="--folds"):
            cli.main(["train", "detector", "--out", str(tmp_path / "x"), *extra])
    with pytest.raises(SystemExit, match="no out-of-fold records"):
        cli.main(["train", "detector-rescore", "--cross-validate", "--dump", str(tmp_path / "missing.json")])


def test_the_second_look_s_point_splits_the_calibration_photos_it_is_for():
    from dogsearch.training.detector.second_look import choose

    dog = [0.0, 0.0, 100.0, 80.0]

    def photo(truth, box, score, share=0.2):
        return {"source": "x", "truth": truth, "photo_dog": 0.9, "first": [box, score], "share": share}

    # a right first candidate at 0.667; photos without a dog whose first candidates score 0.403 and 0.316
    records = [photo([dog], dog, 0.667), photo([], dog, 0.403), photo([], dog, 0.316)]
    assert choose(records) == round((0.403 + 0.667) / 2, 4)  # the middle: both negatives left, the dog taken
    # photos without a dog whose first candidates outscore the dog's: every point costs more than it finds,
    # so the point is 1 (no look)
    more = [*records, photo([], dog, 0.7), photo([], dog, 0.8)]
    assert choose(more) == 1.0
    # ... unless their candidates fill the photo: the look would not take them, so they do not count
    assert choose([*records, photo([], dog, 0.7, 0.6), photo([], dog, 0.8, 0.6)], max_share=0.3) == choose(records)
    assert choose([]) is None and choose([photo([dog], dog, 0.9, 0.5)], max_share=0.3) is None


def test_train_detector_second_look_writes_its_point_into_the_delta(tmp_path, capsys):
    import shutil

    dogs, negatives = _photos(tmp_path)
    weights = tmp_path / "delta"
    shutil.copytree(D.DEFAULT_WEIGHTS_DIR, weights)
    assert cli.main(["train", "detector-second-look", "--weights", str(weights), "--dogs", str(dogs),
                     "--images", str(dogs / "images"), "--negatives", str(negatives), "--threads", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = json.loads((weights / "config.json").read_text())
    assert printed["calibration_photos"] == 4  # the two dogs and the two blue squares of the calibration part
    # the made-up photos: whatever the look finds, the delta holds what was printed, and the head is unchanged
    assert written.get("second_look") == printed["second_look"]
    assert written["files"] == json.loads((D.DEFAULT_WEIGHTS_DIR / "config.json").read_text())["files"]
    with pytest.raises(SystemExit, match="--photo-dog"):
        cli.main(["train", "detector-second-look", "--weights", str(weights), "--photo-dog", "0"])
    with pytest.raises(SystemExit, match="--max-share"):
        cli.main(["train", "detector-second-look", "--weights", str(weights), "--max-share", "1.5"])
