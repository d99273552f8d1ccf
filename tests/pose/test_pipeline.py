from PIL import Image

from dogsearch.models.detect import FALLBACK_SCORE, Detection
from dogsearch.pose.pipeline import GIVEN_SCORE, PosePipeline
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
    assert dog["whole_photo"] is True and dog["given"] is False  # clients compare no proportions with it
    assert len(dog["keypoints"]) == 17


def test_boxes_found_are_posed_as_they_are():
    image = Image.new("RGB", (120, 80), "white")
    dogs = PosePipeline(FakePoseModel(), _Finds([Detection((10, 10, 60, 70), 0.9)])).run(image)["dogs"]
    assert [(d["box"], d["score"], d["whole_photo"]) for d in dogs] == [([10.0, 10.0, 60.0, 70.0], 0.9, False)]


def test_a_given_box_is_posed_alone_and_the_detector_asked_only_for_the_others():
    class Counting(_Finds):
        def __init__(self, found):
            super().__init__(found)
            self.images = 0

        def detect(self, image):
            self.images += 1
            return super().detect(image)

    detector = Counting([Detection((10, 10, 60, 70), 0.9), Detection((70, 10, 110, 70), 0.8)])
    images = [Image.new("RGB", (120, 80), "white"), Image.new("RGB", (120, 80), "grey")]
    given, found = PosePipeline(FakePoseModel(), detector).run_batch(images, [(5, 5, 100, 75), None])
    assert detector.images == 1  # the second photo only
    assert [(d["box"], d["score"]) for d in given["dogs"]] == [([5.0, 5.0, 100.0, 75.0], GIVEN_SCORE)]
    assert not given["dogs"][0]["whole_photo"]
    # the box of a dog that is the whole photo (the embedder's classifier saw a dog where no box was found), given
    [whole] = PosePipeline(FakePoseModel(), detector).run(images[0], (0, 0, 120, 80))["dogs"]
    assert whole["given"] and whole["whole_photo"]
    assert 5 <= given["dogs"][0]["keypoints"][0]["x"] <= 100
    assert [d["score"] for d in found["dogs"]] == [0.9, 0.8]
