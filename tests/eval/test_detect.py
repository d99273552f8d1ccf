"""`dogsearch eval detect`: the box metrics on hand-made boxes, and the command on the pose fixture photos."""
import json
from pathlib import Path

import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.eval.detect import DetectionCounts, average_precision, box_iou, dog_boxes, evaluate, match, sample
from dogsearch.models.detect import FALLBACK_SCORE, Detection, WholeImageDetector
from dogsearch.pose.labels import parse_label_file

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pose"  # two photos, one labelled dog each

DOG_A, DOG_B = (0, 0, 10, 10), (20, 20, 40, 40)


def det(box, score):
    return Detection(tuple(float(v) for v in box), score)


def test_iou():
    assert box_iou(DOG_A, DOG_A) == 1.0
    assert box_iou(DOG_A, DOG_B) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_perfect_detections_are_all_true_positives():
    scored = match([det(DOG_A, 0.9), det(DOG_B, 0.8)], [DOG_A, DOG_B])
    assert scored == [(0.9, True), (0.8, True)]
    assert average_precision(scored, 2) == 1.0


def test_a_missed_dog_halves_recall_and_ap():
    scored = match([det(DOG_A, 0.9)], [DOG_A, DOG_B])
    assert scored == [(0.9, True)]
    assert average_precision(scored, 2) == 0.5


def test_a_box_on_nothing_is_a_false_positive():
    scored = match([det((50, 50, 60, 60), 0.7), det(DOG_A, 0.9)], [DOG_A])
    assert scored == [(0.9, True), (0.7, False)]
    assert average_precision(scored, 1) == 1.0  # ranked below every dog, it costs no precision
    # ranked above the dog, it does: precision 0.5 at recall 1
    assert average_precision([(0.9, False), (0.7, True)], 1) == 0.5


def test_a_dog_is_matched_once_so_a_duplicate_is_a_false_positive():
    scored = match([det((1, 0, 10, 10), 0.6), det(DOG_A, 0.9)], [DOG_A])
    assert scored == [(0.9, True), (0.6, False)]


def test_a_box_below_the_iou_threshold_is_a_miss():
    half = (5, 0, 15, 10)  # IoU 1/3 with DOG_A
    assert match([det(half, 0.9)], [DOG_A]) == [(0.9, False)]
    assert match([det(half, 0.9)], [DOG_A], iou=0.3) == [(0.9, True)]


def test_ap_interpolates_over_all_points():
    # TP, FP, TP over 2 dogs: precision 1 at recall 0.5, 2/3 at recall 1
    assert average_precision([(0.9, True), (0.8, False), (0.7, True)], 2) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision([], 2) == 0.0


def test_the_whole_image_fallback_is_no_dog():
    fallback = det((0, 0, 100, 80), FALLBACK_SCORE)
    assert dog_boxes([fallback, det(DOG_A, 0.3)]) == [det(DOG_A, 0.3)]
    counts = DetectionCounts()
    counts.add([fallback], [DOG_A])
    counts.add([det(DOG_A, 0.9), det(DOG_A, 0.8)], [DOG_A])
    summary = counts.summary()
    assert summary["n_images"] == 2 and summary["n_dogs"] == 2 and summary["no_dog_found"] == 1
    assert (summary["precision"], summary["recall"], summary["ap"]) == (0.5, 0.5, 0.5)


def test_sample_spreads_over_the_list():
    assert sample(list(range(10)), 3) == [0, 3, 6]
    assert sample(list(range(3)), 5) == [0, 1, 2]


class OracleDetector:
    """Boxes each labelled dog of the fixture photos, and a dog in any other photo."""

    name = "oracle"

    def __init__(self) -> None:
        self.boxes = {}
        for label in (FIXTURES / "labels").glob("*.txt"):
            with Image.open(FIXTURES / "images" / f"{label.stem}.jpg") as im:
                self.boxes[im.size] = [tuple(d.box.tolist()) for d in parse_label_file(label, *im.size)]

    def detect(self, image):
        boxes = self.boxes.get(image.size, [(0.0, 0.0, 10.0, 10.0)])
        return [Detection(box, 0.9) for box in boxes]


@pytest.fixture
def negatives(tmp_path) -> Path:
    for i, sub in enumerate(("a", "a", "b/c")):  # searched recursively
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64 + i, 48), (40 * i, 90, 200)).save(tmp_path / sub / f"{i}.png")
    return tmp_path


def test_a_detector_that_finds_every_dog_and_boxes_every_photo(negatives):
    result = evaluate(OracleDetector(), FIXTURES, negatives=[negatives])
    lab = result["labelled"]
    assert (lab["n_images"], lab["n_dogs"], lab["precision"], lab["recall"], lab["ap"]) == (2, 2, 1.0, 1.0, 1.0)
    assert result["negatives"][0]["n_images"] == 3
    assert result["negatives"][0]["fp_rate"] == result["fp_rate"] == 1.0


def test_cli_whole_image_finds_no_dog(negatives, capsys):
    assert cli.main(["eval", "detect", str(FIXTURES), "--detector", "whole-image", "--negatives", str(negatives),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["detector"] == WholeImageDetector.name
    assert (result["runtime"], result["precision"]) == ("torch", "fp32")
    lab = result["labelled"]
    assert (lab["n_images"], lab["n_dogs"], lab["no_dog_found"], lab["precision"], lab["recall"], lab["ap"]) == \
        (2, 2, 2, None, 0.0, 0.0)
    assert result["negatives"][0]["images_with_dog_box"] == 0 and result["fp_rate"] == 0.0


def test_cli_prints_a_table(negatives, capsys):
    assert cli.main(["eval", "detect", str(FIXTURES), "--detector", "whole-image", "--negatives", str(negatives),
                     "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "AP@0.5" in out and "FP rate" in out and str(negatives) in out


def test_cli_says_which_labels_have_no_photo(tmp_path, capsys):
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "x.txt").write_text((FIXTURES / "labels" / "n02093754_175.txt").read_text())
    assert cli.main(["eval", "detect", str(tmp_path), "--detector", "whole-image"]) == 2
    assert "1 of 1 labels have no photo" in capsys.readouterr().err
    (tmp_path / "elsewhere" / "deeper").mkdir(parents=True)  # --images: searched recursively
    (tmp_path / "elsewhere" / "deeper" / "x.jpg").write_bytes((FIXTURES / "images" / "n02093754_175.jpg").read_bytes())
    assert cli.main(["eval", "detect", str(tmp_path), "--detector", "whole-image", "--json",
                     "--images", str(tmp_path / "elsewhere")]) == 0
    assert json.loads(capsys.readouterr().out)["labelled"]["n_dogs"] == 1


def test_a_detector_with_an_operating_point_counts_every_box_it_answers():
    class Thresholded(OracleDetector):
        min_score = 0.02  # below the fallback's 0.05: its boxes count all the same

        def detect(self, image):
            return [Detection(d.box, 0.03) for d in super().detect(image)]

    result = evaluate(Thresholded(), FIXTURES)
    assert result["min_score"] == 0.02 and result["labelled"]["recall"] == 1.0
    assert dog_boxes([det(DOG_A, 0.5), det(DOG_B, 0.4)], 0.5) == [det(DOG_A, 0.5)]  # at the point: a dog


def test_split_keeps_only_the_photos_of_the_split(negatives):
    from dogsearch.eval.detect import evaluate_negatives, split_of

    # by the hash of their names: both fixture photos and 0.png, 1.png are training photos, 2.png is held out
    assert {split_of(p) for p in (FIXTURES / "images").glob("*.jpg")} == {"train"}
    assert [split_of(n) for n in ("0.png", "1.png", "2.png")] == ["train", "train", "held-out"]
    result = evaluate(OracleDetector(), FIXTURES, negatives=[negatives], split="train")
    assert result["split"] == "train" and result["labelled"]["n_images"] == 2
    assert result["negatives"][0]["n_images"] == 2
    assert evaluate_negatives(OracleDetector(), negatives, split="held-out")["n_images"] == 1
    with pytest.raises(ValueError, match="no held-out labelled photos"):
        evaluate(OracleDetector(), FIXTURES, negatives=[negatives], split="held-out")
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(OracleDetector(), FIXTURES, split="test")


def test_cli_split_option(negatives, capsys):
    assert cli.main(["eval", "detect", str(FIXTURES), "--detector", "whole-image", "--split", "all", "--json",
                     "--negatives", str(negatives)]) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "all"
    with pytest.raises(SystemExit):
        cli.main(["eval", "detect", str(FIXTURES), "--split", "test"])


def test_boxes_off_the_labels_of_a_photo_with_unlabelled_dogs_are_left_out():
    from dogsearch.eval.detect import off_labels

    dog = (0.0, 0.0, 100.0, 80.0)
    other_dog, head = (120.0, 0.0, 200.0, 80.0), (60.0, 0.0, 100.0, 40.0)
    assert off_labels(other_dog, [dog]) and not off_labels(head, [dog]) and not off_labels(dog, [dog])
    found = [Detection(dog, 0.9), Detection(other_dog, 0.8), Detection(head, 0.7)]
    plain, only = DetectionCounts(), DetectionCounts()
    plain.add(found, [dog])
    only.add(found, [dog], unlabelled_dogs=True)
    assert plain.summary()["precision"] == round(1 / 3, 4)
    # the second dog's box is neither right nor wrong there; the head box on the labelled dog stays wrong
    assert only.summary()["precision"] == 0.5 and only.summary()["ignored"] == 1
    again = DetectionCounts()
    again.add(found, [dog], unlabelled_dogs=False)
    assert again.summary() == plain.summary()


def test_cli_reports_precision_without_the_unlabelled_dogs(tmp_path, capsys):
    stems = sorted(p.stem for p in (FIXTURES / "labels").glob("*.txt"))
    listed = tmp_path / "unlabelled.txt"
    listed.write_text(f"# dogs the labels lack\n{stems[0]}  # a second dog\n")
    assert cli.main(["eval", "detect", str(FIXTURES), "--detector", "whole-image", "--unlabelled-dogs", str(listed),
                     "--json"]) == 0
    only = json.loads(capsys.readouterr().out)["labelled"]["labelled_only"]
    assert only["photos_with_unlabelled_dogs"] == 1 and only["n_dogs"] == 2
    assert cli.main(["eval", "detect", str(FIXTURES), "--unlabelled-dogs", str(tmp_path / "missing.txt")]) == 2


def test_cli_refuses_a_precision_its_runtime_cannot_run(capsys):
    assert cli.main(["eval", "detect", str(FIXTURES), "--runtime", "onnxruntime", "--precision", "bf16"]) == 2
    assert "runtime 'onnxruntime' runs precision 'fp32'" in capsys.readouterr().err


def test_cli_weights_evaluates_a_trained_delta_in_place_of_the_shipped_one(tmp_path, capsys):
    import shutil

    delta = tmp_path / "delta"
    shutil.copytree(Path(__file__).parents[2] / "models" / "detector-lite0-centernet", delta)
    config = json.loads((delta / "config.json").read_text())
    config["operating_point"]["verified"] = 1.01  # no score reaches it: this delta boxes nothing
    config.pop("second_look")  # not even on a second look
    (delta / "config.json").write_text(json.dumps(config))
    args = ["eval", "detect", str(FIXTURES), "--threads", "1", "--json"]
    assert cli.main(args) == 0
    shipped = json.loads(capsys.readouterr().out)
    assert cli.main([*args, "--weights", str(delta)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert shipped["labelled"]["recall"] > 0 and "weights" not in shipped
    assert result["weights"] == str(delta)
    assert (result["labelled"]["n_detections"], result["labelled"]["recall"]) == (0, 0.0)

    (delta / "head.safetensors").write_bytes(b"not the trained head")
    assert cli.main([*args, "--weights", str(delta)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_a_detector_s_second_look_answers_from_its_own_lower_point():
    from types import SimpleNamespace

    from dogsearch.eval.detect import operating_point

    look = {"photo_dog": 0.5, "score": 0.53}
    assert operating_point(SimpleNamespace(min_score=0.68, look=look, look_again=True)) == 0.53
    assert operating_point(SimpleNamespace(min_score=0.68, look=look, look_again=False)) == 0.68  # the caller's
    assert operating_point(SimpleNamespace(min_score=0.68)) == 0.68 and operating_point(SimpleNamespace()) is None
