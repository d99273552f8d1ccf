"""The shipped pose model and the saliency detector on two held-out labelled photos."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.models.pose import keypoints as K
from dogsearch.pose.labels import parse_label_file

pytestmark = pytest.mark.real_model
FIXTURES = Path(__file__).parents[1] / "fixtures" / "pose"
IDS = ["n02093754_175", "n02089973_770"]


def _load(image_id):
    image = Image.open(FIXTURES / "images" / f"{image_id}.jpg").convert("RGB")
    [dog] = parse_label_file(FIXTURES / "labels" / f"{image_id}.txt", image.width, image.height)
    return image, dog


@pytest.fixture(scope="module")
def model():
    from dogsearch.models.pose.lite_fpn import LiteFpnPoseModel

    return LiteFpnPoseModel()


@pytest.mark.parametrize("image_id", IDS)
def test_keypoints_fall_on_the_dog(model, image_id):
    image, dog = _load(image_id)
    [pose] = model.predict(image, dog.box[None])
    assert pose.points.shape == (K.NUM_MODEL, 2)
    x1, y1, x2, y2 = dog.box
    margin = 0.1 * max(x2 - x1, y2 - y1)
    seen = pose.scores[: K.NUM_AP10K] >= 0.3
    assert seen.sum() >= 8, pose.scores
    inside = ((pose.points[:, 0] >= x1 - margin) & (pose.points[:, 0] <= x2 + margin)
              & (pose.points[:, 1] >= y1 - margin) & (pose.points[:, 1] <= y2 + margin))[: K.NUM_AP10K]
    assert inside[seen].all()
    # and most labelled joints are found within 0.2 x the box's longer side
    dist = np.linalg.norm(pose.points - dog.points, axis=1)[: K.NUM_AP10K]
    close = dist[dog.visible[: K.NUM_AP10K]] <= 0.2 * max(x2 - x1, y2 - y1)
    assert close.mean() >= 0.6, dist


def test_saliency_detector_finds_the_dog():
    from dogsearch.eval.pose import iou
    from dogsearch.models.detect import SaliencyDetector

    detector = SaliencyDetector(threads=2)
    for image_id in IDS:
        image, dog = _load(image_id)
        found = detector.detect(image)
        assert found and found[0].score > 0.3
        assert max(iou(d.box, dog.box) for d in found) > 0.4, (found, dog.box)


def test_service_pipeline_end_to_end(model):
    from dogsearch.models.detect import SaliencyDetector
    from dogsearch.pose.pipeline import PosePipeline

    image, dog = _load(IDS[0])
    result = PosePipeline(model, SaliencyDetector(threads=2)).run(image)
    assert result["model"].startswith("pose-lite0-fpn@")
    assert len(result["dogs"]) >= 1
    assert result["dogs"][0]["analysis"]["posture"]["label"] in ("standing", "sitting", "lying", "unknown")


def test_a_batch_of_photos_gives_what_each_photo_gives_alone(model):
    items = [(image, dog.box[None]) for image, dog in map(_load, IDS)]
    together = model.predict_many(items)
    for (image, boxes), batched in zip(items, together, strict=True):
        [alone] = model.predict(image, boxes)
        np.testing.assert_allclose(batched[0].points, alone.points, atol=0.5)
        np.testing.assert_allclose(batched[0].scores, alone.scores, atol=1e-3)


def test_onnxruntime_gives_torchs_keypoints(model, tmp_path):
    from dogsearch.models.pose.lite_fpn import LiteFpnPoseModel

    torch_flip = LiteFpnPoseModel(flip_test=True, runtime="torch")
    ort = LiteFpnPoseModel(flip_test=True, runtime="onnxruntime", threads=1, cache_dir=tmp_path)
    assert (torch_flip.runtime, ort.runtime) == ("torch", "onnxruntime")
    assert ort.model_id == torch_flip.model_id  # the same network: the same keypoints
    assert len(list(tmp_path.glob("*.onnx"))) == 1  # exported once, cached
    items = [(image, np.stack([dog.box, dog.box * 0.9])) for image, dog in map(_load, IDS)]  # two boxes a photo
    for expected, got in zip(torch_flip.predict_many(items), ort.predict_many(items), strict=True):
        for a, b in zip(expected, got, strict=True):
            np.testing.assert_allclose(b.points, a.points, atol=0.01)  # px: a heatmap cell is 4 input px
            np.testing.assert_allclose(b.scores, a.scores, atol=1e-4)
