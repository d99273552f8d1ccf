"""Pose models and dog detectors are built by name from their registries, whose names the settings offer."""
from __future__ import annotations

from typing import get_args

import numpy as np
import pytest
from PIL import Image

from dogsearch.models import registry as R
from dogsearch.models.detect import FALLBACK_SCORE, WholeImageDetector
from dogsearch.models.pose.model import BoxPose
from dogsearch.services.pose.settings import PoseSettings


def test_the_settings_offer_exactly_the_registered_names_and_defaults():
    fields = PoseSettings.model_fields
    assert list(get_args(fields["model"].annotation)) == R.POSE_MODELS.names() == ["lite0-fpn", "hrnet-w32-ap10k"]
    assert sorted(get_args(fields["detector"].annotation)) == sorted(R.list_detectors()) == \
        ["lite0-centernet", "lite0-centernet-raw", "lite0-centernet-rescored", "saliency", "whole-image"]
    settings = PoseSettings()
    assert (settings.model, settings.detector) == (R.DEFAULT_POSE_MODEL, R.DEFAULT_DETECTOR)


def test_unknown_names_say_the_choices():
    with pytest.raises(ValueError, match="unknown pose model 'hrnet': use 'lite0-fpn' or 'hrnet-w32-ap10k'"):
        R.create_pose_model("hrnet")
    with pytest.raises(ValueError, match="unknown detector 'yolo': use 'lite0-centernet', 'saliency', 'whole-image', "
                                         "'lite0-centernet-rescored' or 'lite0-centernet-raw'"):
        R.create_detector("yolo")


def test_a_detector_is_built_by_name_with_the_options_it_takes():
    detector = R.create_detector("whole-image", threads=2, max_dogs=3, input_size=168)
    assert isinstance(detector, WholeImageDetector)
    [found] = detector.detect(Image.new("RGB", (40, 30)))
    assert found.box == (0.0, 0.0, 40.0, 30.0) and found.score == FALLBACK_SCORE


def test_a_new_pose_model_is_one_registered_function():
    asked = []

    class StandStill:
        model_id = "stand-still"

        def predict(self, image, boxes):
            return [BoxPose(np.zeros((17, 2), np.float32), np.ones(17, np.float32), ("nose",) * 17) for _ in boxes]

    @R.register_pose_model("stand-still")
    def stand_still(*, device: str = "cpu", **options) -> StandStill:
        asked.append((device, options))
        return StandStill()

    try:
        model = R.create_pose_model("stand-still", device="cpu", checkpoint="/x.pth")
        assert model.model_id == "stand-still" and len(model.predict(None, np.zeros((2, 4)))) == 2
        assert asked[0][0] == "cpu" and asked[0][1]["checkpoint"] == "/x.pth"
        assert R.POSE_MODELS.names()[0] == R.DEFAULT_POSE_MODEL and "stand-still" in R.POSE_MODELS.names()
    finally:
        R.POSE_MODELS.remove("stand-still")
    assert "stand-still" not in R.POSE_MODELS.names()
