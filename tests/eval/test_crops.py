"""`dogsearch eval crops`: the composed and small-dog sets on tiny synthetic photos, the margin choice, and the
command end to end with the fake model and the whole-image detector."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.core.boxes import area
from dogsearch.eval import crops as ev
from dogsearch.eval import retrieval
from dogsearch.models.detect import WholeImageDetector
from tests.fakes import ColorGridModel

RED, BLUE, GREEN, YELLOW = (220, 30, 30), (30, 30, 220), (30, 200, 30), (230, 220, 40)
SCENES = [(Path(f"scene{i}.png"), size) for i, size in enumerate([(224, 224), (300, 160), (160, 300)])]


def test_a_composition_is_drawn_from_the_photo_alone():
    plan = ev.plan_composition("rex/a.jpg", (213, 160), SCENES, seed=3)
    assert ev.plan_composition("rex/a.jpg", (213, 160), SCENES, seed=3) == plan  # every run alike
    others = {ev.plan_composition(f"rex/{i}.jpg", (213, 160), SCENES, seed=3) for i in range(20)}
    assert len({p.box for p in others}) == 20 and len({p.scene for p in others}) == 3
    assert ev.plan_composition("rex/a.jpg", (213, 160), SCENES, seed=4) != plan  # another seed, another draw


@pytest.mark.parametrize("dog_size", [(213, 160), (160, 240), (320, 100), (50, 50)])
def test_the_dog_lies_inside_the_scene_and_covers_its_share(dog_size):
    shares = []
    for i in range(200):
        plan = ev.plan_composition(f"dog{i}", dog_size, SCENES, side=640)
        width, height = plan.size
        assert max(width, height) == 640
        x0, y0, x1, y1 = plan.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert abs((x1 - x0) / (y1 - y0) - dog_size[0] / dog_size[1]) < 0.02  # its aspect ratio kept
        shares.append(plan.share)
    assert 0.10 - 0.005 <= min(shares) and max(shares) <= 0.30 + 0.005  # up to rounding to whole pixels
    assert min(shares) < 0.13 and max(shares) > 0.27  # the whole range is drawn


def test_a_dog_too_wide_for_the_scene_is_narrowed_or_refused():
    plans = [ev.plan_composition(f"d{i}", (400, 100), SCENES[1:2], side=300) for i in range(50)]  # scene 300x160
    assert all(p.share <= 300 * 75 / (300 * 160) + 0.005 for p in plans)  # at most the full width: 300x75
    with pytest.raises(ValueError, match="cannot cover"):
        ev.plan_composition("d", (1000, 10), SCENES[1:2], share=(0.2, 0.3))


def test_compose_pastes_the_dog_into_the_scaled_scene(tmp_path):
    Image.new("RGB", (64, 32), GREEN).save(tmp_path / "scene.png")
    plan = ev.plan_composition("a", (20, 10), [(tmp_path / "scene.png", (64, 32))], side=128)
    image = ev.compose(Image.new("RGB", (20, 10), RED), plan)
    assert image.size == plan.size == (128, 64)
    x0, y0, x1, y1 = plan.box
    assert image.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)) == RED
    outside = (0, 0) if x0 > 0 or y0 > 0 else (127, 63)
    assert image.getpixel(outside) == GREEN


def test_the_small_dog_rule():
    assert ev.is_small((0, 0, 10, 10), 20, 20)  # 25 %
    assert not ev.is_small((0, 0, 12, 10), 20, 20)  # 30 %: not under
    assert ev.is_small((0, 0, 12, 10), 20, 20, max_share=0.31)


def _label(box, width, height) -> str:
    x0, y0, x1, y1 = box
    head = [0, (x0 + x1) / 2 / width, (y0 + y1) / 2 / height, (x1 - x0) / width, (y1 - y0) / height]
    return " ".join(str(v) for v in head + [0.0] * 72) + "\n"


def _small_dog_photo(root: Path, image_id: str, dog, ground, boxes, size=(48, 40), where="images"):
    """A photo of one ``ground`` colour with a ``dog`` coloured rectangle in the first box, and its label file."""
    image = Image.new("RGB", size, ground)
    image.paste(Image.new("RGB", (int(boxes[0][2] - boxes[0][0]), int(boxes[0][3] - boxes[0][1])), dog),
                (int(boxes[0][0]), int(boxes[0][1])))
    (root / where).mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    image.save(root / where / f"{image_id}.png")
    (root / "labels" / f"{image_id}.txt").write_text("".join(_label(b, *size) for b in boxes))


@pytest.fixture
def small_dir(tmp_path) -> Path:
    """Two breeds (red, blue) of small dogs on two grounds, a breed on each ground: the whole photo matches the
    ground, the dog's crop the breed. And photos that are left out: a large dog, a breed with one small dog."""
    root = tmp_path / "dogpose"
    for breed, dog in (("n001", RED), ("n002", BLUE)):
        for i, ground in enumerate((GREEN, YELLOW)):
            _small_dog_photo(root, f"{breed}_{i}", dog, ground, [(4 + 3 * i, 6, 20 + 3 * i, 20)])
    _small_dog_photo(root, "n001_9", RED, GREEN, [(0, 0, 40, 36)])  # 75 % of the photo
    _small_dog_photo(root, "n003_1", RED, GREEN, [(0, 0, 10, 10)])  # small, but alone of its breed
    # two dogs: the larger decides (24 % of the photo: small), in a folder given with --images
    _small_dog_photo(root, "n002_7", BLUE, YELLOW, [(20, 10, 44, 30), (0, 0, 4, 4)], where="elsewhere/sub")
    return root


def test_small_dogs_keeps_the_photos_whose_dog_covers_little(small_dir):
    items, n_labelled = ev.small_dogs(small_dir, [small_dir / "elsewhere"])
    assert n_labelled == 7
    assert sorted(Path(i.path).stem for i in items) == ["n001_0", "n001_1", "n002_0", "n002_1", "n002_7", "n003_1"]
    two = next(i for i in items if i.path.stem == "n002_7")
    assert two.label == "n002" and area(two.box) == pytest.approx(24 * 20, abs=0.5)  # the larger box
    assert [i.label for i in ev.keep_retrievable(items)].count("n003") == 0


def _metrics(**views):
    return {"views": {v: {"recall@1": r, "map": m} for v, (r, m) in views.items()}}


def test_the_margin_is_the_best_on_small_dogs_that_loses_nothing_on_plain_photos():
    result = {"sets": {
        "small": _metrics(**{"detected@0": (0.5, 0.40), "detected@0.1": (0.6, 0.50), "detected@0.2": (0.6, 0.55)}),
        "composed": _metrics(**{"detected@0": (0.5, 0.40), "detected@0.1": (0.6, 0.50), "detected@0.2": (0.6, 0.53)}),
        "plain": _metrics(whole=(0.9, 0.80), **{"detected@0": (0.85, 0.70), "detected@0.1": (0.9, 0.795),
                                                "detected@0.2": (0.88, 0.80)}),
    }}
    choice = ev.choose_margin(result, [0.0, 0.1, 0.2])
    assert choice["margin"] == 0.1  # 0.2 is better on small dogs but loses 0.02 of R@1 on plain photos
    assert choice["keeps_plain"] == {"0": False, "0.1": True, "0.2": False} and choice["any_keeps_plain"]
    assert choice["objective"]["0.2"] == pytest.approx(0.54)
    assert ev.choose_margin(result, [0.0, 0.1, 0.2], tolerance=0.03)["margin"] == 0.2
    strict = ev.choose_margin(result, [0.0, 0.1, 0.2], tolerance=0.0)  # every margin loses: the least loss wins
    assert strict["margin"] == 0.1 and not strict["any_keeps_plain"]
    assert strict["plain_loss"] == {"0": 0.1, "0.1": 0.005, "0.2": 0.02}
    assert ev.choose_margin({"sets": {"plain": result["sets"]["plain"]}}, [0.0]) is None


def _breed_photos(root: Path, n_per_breed=3):
    for breed, dog in (("n001", RED), ("n002", BLUE)):
        (root / breed).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_breed):
            image = Image.new("RGB", (32, 24), tuple(min(255, c + 10 * i) for c in dog))
            image.paste(Image.new("RGB", (6, 6), GREEN), (2 * i, 0))
            image.save(root / breed / f"{i}.jpg")


def test_eval_crops_end_to_end(small_dir, tmp_path, monkeypatch, capsys):
    breeds, scenes = tmp_path / "dev", tmp_path / "scenes"
    _breed_photos(breeds)
    scenes.mkdir()
    for i, color in enumerate((GREEN, YELLOW)):
        Image.new("RGB", (64, 48), color).save(scenes / f"{i}.png")
    model = ColorGridModel()
    monkeypatch.setattr(retrieval, "load_model", lambda name, device: model)
    args = ["eval", "crops", "--small", str(small_dir), "--images", str(small_dir / "elsewhere"),
            "--composed", str(breeds), "--scenes", str(scenes), "--scene-side", "128", "--plain", str(breeds),
            "--detector", "whole-image", "--margins", "0,0.25", "--cache-dir", str(tmp_path / "cache"), "--json"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["model"], out["detector"], out["margins"]) == ("test-color-grid", WholeImageDetector.name, [0, 0.25])
    small, comp, flat = out["sets"]["small"], out["sets"]["composed"], out["sets"]["plain"]
    assert (small["n_images"], small["n_labels"], small["n_labelled"]) == (5, 2, 7)
    assert list(small["views"]) == ["whole", "labelled@0", "labelled@0.25", "detected@0", "detected@0.25"]
    # the whole photo finds the ground, the dog's box the breed
    assert small["views"]["labelled@0"]["recall@1"] == 1.0 and small["views"]["whole"]["recall@1"] < 0.5
    # whole-image finds no dog: every detected view is the whole photo
    assert small["no_dog_found"] == 5 and small["detected_iou_mean"] == 0.0
    assert all(small["views"][f"detected@{m}"] == small["views"]["whole"] for m in ("0", "0.25"))
    assert comp["n_images"] == 6 and 0.1 <= comp["dog_share_mean"] <= 0.3
    assert comp["views"]["labelled@0"]["recall@1"] == 1.0
    assert list(flat["views"]) == ["whole", "detected@0", "detected@0.25"] and flat["views"]["whole"]["map"] == 1.0
    assert out["choice"]["sets"] == ["small", "composed", "plain"] and out["choice"]["margin"] == 0
    embedded = sum(model.batch_sizes)
    assert embedded == 5 * 3 + 6 * 3 + 6  # one embedding per distinct crop: whole, labelled@0, labelled@0.25
    # a rerun takes every embedding from the cache, and the table names every view
    assert cli.main(args[:-1]) == 0
    assert sum(model.batch_sizes) == embedded
    table = capsys.readouterr().out
    assert "labelled@0.25" in table and "margin chosen: 0" in table


def test_eval_crops_refuses_what_it_cannot_measure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(retrieval, "load_model", lambda name, device: ColorGridModel())
    assert cli.main(["eval", "crops", "--detector", "whole-image"]) == 2
    assert "no set to evaluate" in capsys.readouterr().err
    assert cli.main(["eval", "crops", "--plain", str(tmp_path / "nope"), "--detector", "whole-image"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert cli.main(["eval", "crops", "--plain", str(tmp_path), "--margins", "0,x", "--detector", "whole-image"]) == 2
    assert "--margins" in capsys.readouterr().err
    assert cli.main(["eval", "crops", "--composed", str(tmp_path), "--detector", "whole-image"]) == 2
    assert "scenes" in capsys.readouterr().err
