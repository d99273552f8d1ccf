"""`dogsearch train detector` end to end on a few made-up photos: it writes a delta the registry's detector loads."""
from __future__ import annotations

import json
from itertools import count

import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.models import dogdet as D
from dogsearch.training.detector.data import part_of


def _names(part: str, n: int, suffix: str) -> list[str]:
    found = (f"x{i}{suffix}" for i in count())
    return [name for name, _ in zip((f for f in found if part_of(f) == part), range(n), strict=False)]


def test_train_detector_cli_writes_a_delta_the_detector_loads(tmp_path, capsys):
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


def test_train_detector_refuses_a_share_outside_0_1(tmp_path):
    with pytest.raises(SystemExit, match="--suppress-inside"):
        cli.main(["train", "detector", "--out", str(tmp_path / "x"), "--suppress-inside", "1.5"])
