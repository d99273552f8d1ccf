"""`dogsearch eval breed-guess`: folder names map to ImageNet's breed classes, the accuracy is counted per breed,
breeds without a class are left out and listed, and dog crops are compared with whole photos."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dogsearch.cli import main
from dogsearch.core.boxes import DEFAULT_MARGIN
from dogsearch.eval.breedguess import OXFORD_BREEDS, breed_class, evaluate, ranked_breeds, yolo_box
from dogsearch.models.dogclass import BREED_CLASSES, breed_name

FIXTURES = Path(__file__).parents[1] / "fixtures" / "dogs"
BEAGLE, SAMOYED, BASSET = 162, 258, 161


def test_folder_names_map_to_imagenet_breeds():
    assert breed_class("n02088364") == BEAGLE  # a WordNet id, as Imagewoof names its folders
    assert breed_name(breed_class("scottish_terrier")) == "Scotch terrier"  # Oxford's name for it
    assert breed_name(breed_class("english_cocker_spaniel")) == "cocker spaniel"
    assert breed_class("golden_retriever") == breed_class("Golden Retriever") == 207  # an ImageNet name
    assert breed_class("havanese") is None and breed_class("american_bulldog") is None  # no ImageNet class
    assert breed_class("n01440764") is None  # a tench is no breed
    assert breed_class("labradoodle") is None


def test_every_oxford_breed_in_the_table_is_an_imagenet_breed_class():
    mapped = {name: breed_class(name) for name, wnid in OXFORD_BREEDS.items() if wnid is not None}
    assert all(index in BREED_CLASSES for index in mapped.values())
    assert len(set(mapped.values())) == len(mapped)  # no two Oxford breeds share a class


def test_ranked_breeds_skip_classes_that_are_no_breed():
    probs = np.zeros((1, 1000))
    probs[0, [0, SAMOYED, BEAGLE, 270]] = [0.5, 0.3, 0.1, 0.1]  # tench, Samoyed, beagle, white wolf
    ranked = ranked_breeds(probs)
    assert ranked.shape == (1, 119) and list(ranked[0, :2]) == [SAMOYED, BEAGLE]


def _fake_probabilities(answer):
    """A classifier whose ranking of an image is ``answer(image)``: classes, the likeliest first."""
    def probabilities(images):
        out = np.full((len(images), 1000), 1e-6)
        for row, image in enumerate(images):
            for rank, index in enumerate(answer(image)):
                out[row, index] = 1.0 - 0.1 * rank
        return out
    return probabilities


def _key(image) -> float:
    return round(float(np.asarray(image, dtype=np.float64).mean()), 3)


@pytest.fixture
def breed_dirs(tmp_path):
    """Two breed folders of the fixtures (a beagle photo twice, a Samoyed photo twice) and one with no class."""
    root = tmp_path / "breeds"
    for wnid in ("n02088364", "n02111889"):
        shutil.copytree(FIXTURES / wnid, root / wnid)
    shutil.copytree(FIXTURES / "n02088364", root / "havanese")
    return root


def test_accuracy_per_breed_and_the_breeds_left_out(breed_dirs):
    from PIL import Image

    keys = {p: _key(Image.open(p).convert("RGB")) for p in breed_dirs.glob("n*/*.jpg")}
    beagles = sorted(k for p, k in keys.items() if p.parent.name == "n02088364")
    samoyeds = sorted(k for p, k in keys.items() if p.parent.name == "n02111889")
    answers = {beagles[0]: [BEAGLE], beagles[1]: [BASSET, SAMOYED, BEAGLE],  # right, then third
               samoyeds[0]: [SAMOYED], samoyeds[1]: [BEAGLE, 0, BASSET, 170, SAMOYED]}  # right; 4th breed
    assert len(set(answers)) == 4  # the fixtures' mean pixels tell the photos apart
    result = evaluate(breed_dirs, _fake_probabilities(lambda im: answers[_key(im)]), batch_size=3)
    assert (result["top1"], result["top3"], result["n_images"], result["n_breeds"]) == (0.5, 0.75, 4, 2)
    assert result["per_breed"]["n02088364"] == {"imagenet": "beagle", "top1": 0.5, "top3": 1.0, "n_images": 2}
    assert result["per_breed"]["n02111889"]["top3"] == 0.5
    assert result["left_out"] == ["havanese"] and "crops" not in result


def test_crops_from_label_boxes_are_compared_with_whole_photos(breed_dirs, tmp_path):
    from PIL import Image

    labels = tmp_path / "labels"
    labels.mkdir()
    photo = sorted((breed_dirs / "n02088364").iterdir())[0]
    (labels / f"{photo.stem}.txt").write_text("0 0.5 0.5 0.5 0.5 " + "0 0 0 " * 24 + "\n")
    width, height = Image.open(photo).size
    crop = yolo_box(labels / f"{photo.stem}.txt", width, height)
    assert crop == pytest.approx((width / 4, height / 4, 3 * width / 4, 3 * height / 4))
    # whole photos look like a basset; the crop (the box and its margin, under 0.4: < 90 % of each side) a beagle
    assert DEFAULT_MARGIN < 0.4

    def answer(image):
        return [BEAGLE] if image.size[0] < 0.9 * width else [BASSET]

    result = evaluate(breed_dirs, _fake_probabilities(answer), boxes=labels)
    assert result["crops"]["whole"] == {"top1": 0.0, "top3": 0.0, "n_images": 1}
    assert result["crops"]["crop"] == {"top1": 1.0, "top3": 1.0, "n_images": 1}


def test_no_breed_with_a_class_is_a_clear_error(tmp_path):
    shutil.copytree(FIXTURES / "n02088364", tmp_path / "havanese")
    with pytest.raises(ValueError, match="left out: havanese"):
        evaluate(tmp_path, _fake_probabilities(lambda im: []))


def test_cli_runs_the_real_classifier_and_prints_json(breed_dirs, capsys):
    assert main(["eval", "breed-guess", str(breed_dirs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_images"] == 4 and result["left_out"] == ["havanese"]
    assert result["per_breed"]["n02088364"]["top3"] == 1.0  # the real head knows these beagles


def test_cli_rejects_a_missing_folder(tmp_path, capsys):
    assert main(["eval", "breed-guess", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err
