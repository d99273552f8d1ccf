import pytest
from PIL import Image

from dogsearch.models.detect import FALLBACK_SCORE, Detection
from dogsearch.models.dogclass import Classification, Label
from dogsearch.pose.pipeline import GIVEN_SCORE, PosePipeline
from tests.fakes import FakePoseModel


class _Finds:
    def __init__(self, found):
        self.found = found

    def detect(self, image):
        return list(self.found)


class _FindsNoneButSees(_Finds):
    """No box, and the dog classifier's answer on the whole photo, as lite0-centernet's second look gives it."""

    def __init__(self, dog: float):
        super().__init__([])
        self.seen = Classification(dog, (), (Label("garbage truck", 0.81), Label("trailer truck", 0.09),
                                             Label("tow truck", 0.0003)))

    def detect_seen(self, images):
        return [[] for _ in images], [self.seen for _ in images]


def _posed_whole(answer: dict) -> None:
    [dog] = answer["dogs"]
    assert dog["box"] == [0.0, 0.0, 120.0, 80.0] and dog["score"] == FALLBACK_SCORE
    assert dog["whole_photo"] is True and dog["given"] is False  # clients compare no proportions with it
    assert len(dog["keypoints"]) == 17 and "seems" not in answer


def test_a_photo_without_a_box_is_posed_whole_and_scored_as_no_box_where_a_dog_is_not_required():
    image = Image.new("RGB", (120, 80), "white")
    _posed_whole(PosePipeline(FakePoseModel(), _Finds([]), require_dog=False).run(image))
    _posed_whole(PosePipeline(FakePoseModel(), _FindsNoneButSees(0.006), require_dog=False).run(image))


def test_a_photo_without_a_dog_is_answered_without_dogs_saying_what_it_seems_to_show():
    """The detector boxes no dog and the classifier calls the whole photo none (a garbage truck: 0.006): no dog's
    skeleton posed over it, nor a guess under SEEMS_FLOOR (a tow truck at 0.0003, said "0 %"). The other photos of
    the batch are posed as they are."""
    model, image = FakePoseModel(), Image.new("RGB", (120, 80), "white")
    truck, given = PosePipeline(model, _FindsNoneButSees(0.006)).run_batch([image, image], [[], [(5, 5, 100, 75)]])
    assert truck == {
        "model": "test-standing-template",
        "width": 120,
        "height": 80,
        "dogs": [],
        "seems": [{"label": "garbage truck", "p": 0.81}, {"label": "trailer truck", "p": 0.09}],
    }
    assert len(given["dogs"]) == 1 and model.calls == 1
    # a detector that does not classify the photo (saliency, -raw): nothing to say it seems to show
    assert PosePipeline(model, _Finds([])).run(image) == {
        "model": "test-standing-template",
        "width": 120,
        "height": 80,
        "dogs": [],
        "seems": [],
    }


@pytest.mark.parametrize("dog", [0.5, 0.851])
def test_a_close_up_the_classifier_calls_a_dog_is_posed_whole(dog):
    """No box on the detector's second look, but the classifier calls the whole photo a dog (the close-up fixture:
    0.851): the dog a search takes whole, posed whole."""
    _posed_whole(PosePipeline(FakePoseModel(), _FindsNoneButSees(dog)).run(Image.new("RGB", (120, 80), "white")))


@pytest.mark.parametrize("whole_photo_dog", [0.9, None])
def test_a_close_up_under_the_pipelines_whole_photo_dog_is_answered_without_dogs(whole_photo_dog):
    """The close-up (0.851) against a higher whole_photo_dog, or none (the detector alone decides): no dog."""
    answer = PosePipeline(FakePoseModel(), _FindsNoneButSees(0.851), whole_photo_dog=whole_photo_dog).run(
        Image.new("RGB", (120, 80), "white"))
    assert answer["dogs"] == [] and answer["seems"][0]["label"] == "garbage truck"


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
    given, found = PosePipeline(FakePoseModel(), detector).run_batch(images, [[(5, 5, 100, 75)], []])
    assert detector.images == 1  # the second photo only
    assert [(d["box"], d["score"]) for d in given["dogs"]] == [([5.0, 5.0, 100.0, 75.0], GIVEN_SCORE)]
    assert not given["dogs"][0]["whole_photo"]
    # the box of a dog that is the whole photo (the embedder's classifier saw a dog where no box was found), given
    [whole] = PosePipeline(FakePoseModel(), detector).run(images[0], [(0, 0, 120, 80)])["dogs"]
    assert whole["given"] and whole["whole_photo"]
    assert 5 <= given["dogs"][0]["keypoints"][0]["x"] <= 100
    assert [d["score"] for d in found["dogs"]] == [0.9, 0.8]


def test_several_given_boxes_are_each_posed_the_first_max_dogs():
    """The dogs of a photo a search found, sent together: each posed in its box, the detector not asked."""
    detector = _Finds([Detection((1, 1, 2, 2), 0.9)])
    boxes = [(5, 5, 50, 75), (60, 5, 115, 75), (0, 0, 30, 30)]
    dogs = PosePipeline(FakePoseModel(), detector, max_dogs=2).run(Image.new("RGB", (120, 80)), boxes)["dogs"]
    assert [(d["box"], d["score"], d["given"]) for d in dogs] == [
        ([5.0, 5.0, 50.0, 75.0], GIVEN_SCORE, True),
        ([60.0, 5.0, 115.0, 75.0], GIVEN_SCORE, True),
    ]
