"""`dogsearch eval pose` on the two fixture photos, with models whose answers we know."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.eval.pose import evaluate_dir
from dogsearch.models.detect import Detection
from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.model import BoxPose
from dogsearch.pose.labels import parse_label_file
from dogsearch.pose.pipeline import PosePipeline
from tests.fakes import FakePoseModel

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pose"


class OracleModel:
    """Answers the labelled points of the dog whose box is given, optionally shifted."""

    model_id = "oracle"

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift
        self.truth = {}
        for label in (FIXTURES / "labels").glob("*.txt"):
            with Image.open(FIXTURES / "images" / f"{label.stem}.jpg") as im:
                for dog in parse_label_file(label, *im.size):
                    self.truth[tuple(np.round(dog.box, 2))] = dog

    def predict(self, image, boxes):
        out = []
        for box in np.asarray(boxes).reshape(-1, 4):
            dog = self.truth[tuple(np.round(box, 2))]
            side = max(box[2] - box[0], box[3] - box[1])
            out.append(BoxPose(dog.points + np.array([self.shift * side, 0]), np.ones(K.NUM_MODEL), K.MODEL_NAMES))
        return out


class LabelBoxDetector:
    name = "label-boxes"

    def __init__(self, model: OracleModel) -> None:
        self.model = model

    def detect(self, image):
        return [Detection(tuple(float(v) for v in dog.box), 1.0) for dog in self.model.truth.values()
                if dog.box[2] <= image.width + 1 and dog.box[3] <= image.height + 1][:1]


@pytest.mark.parametrize("shift, expected", [(0.0, 1.0), (0.09, 1.0), (0.11, 0.0)])
def test_labelled_boxes_pck(shift, expected):
    model = OracleModel(shift)
    result = evaluate_dir(FIXTURES, boxes="labelled", pipeline=PosePipeline(model, LabelBoxDetector(model)))
    assert result["pck@0.1"] == pytest.approx(expected)
    assert result["n_images"] == 2 and result["n_dogs"] == 2
    assert result["per_joint"]["left_eye"] == {"pck": None, "n": 0}  # never labelled: never counted
    assert result["n_keypoints"] == sum(item["n"] for item in result["per_joint"].values()) > 20


def test_detected_path_counts_a_missed_dog_as_misses():
    class Nowhere:
        name = "nowhere"

        def detect(self, image):
            return [Detection((0.0, 0.0, 2.0, 2.0), 0.9)]  # overlaps no labelled dog

    result = evaluate_dir(FIXTURES, pipeline=PosePipeline(FakePoseModel(), Nowhere()))
    assert result["pck@0.1"] == 0.0 and result["dogs_found"] == 0
    assert result["detector"] == "nowhere" and result["model"] == "test-standing-template"
