from PIL import Image

from dogsearch.models.detect import FALLBACK_SCORE, Detection
from dogsearch.pose.pipeline import PosePipeline
from tests.fakes import FakePoseModel


class _Finds:
    def __init__(self, found):
        self.found = found

    def detect(self, image):
        return list(self.found)


def test_a_photo_without_a_box_is_posed_whole_and_scored_as_no_box():
    image = Image.new("RGB", (120, 80), "white")
    [dog] = PosePipeline(FakePoseModel(), _Finds([])).run(image)["dogs"]
    assert dog["box"] == [0.0, 0.0, 120.0, 80.0] and dog["score"] == FALLBACK_SCORE
    assert len(dog["keypoints"]) == 17


def test_boxes_found_are_posed_as_they_are():
    image = Image.new("RGB", (120, 80), "white")
    dogs = PosePipeline(FakePoseModel(), _Finds([Detection((10, 10, 60, 70), 0.9)])).run(image)["dogs"]
    assert [(d["box"], d["score"]) for d in dogs] == [([10.0, 10.0, 60.0, 70.0], 0.9)]
