"""Pose models: photo + dog boxes in, keypoints (x, y, score) per box out. What every pose model shares is here;
the models themselves are families in ``dogsearch.models.registry``'s pose registry, built by name with
``create_pose_model``:

* ``"lite0-fpn"`` (the default, ``lite_fpn.py``): trained here (see models/pose-lite0-fpn/MODEL_CARD.md);
  EfficientNet-Lite0 from the registry package plus the shipped trained layers. 17 AP-10K keypoints + tail tip.
* ``"hrnet-w32-ap10k"`` (``hrnet.py``): OpenMMLab's HRNet-W32 AP-10K model through MMPose, from a checkpoint
  the user supplies (none can be downloaded here). 17 AP-10K keypoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image


class PoseModelError(RuntimeError):
    """The pose model cannot be built: missing files, packages or a bad checkpoint."""


@dataclass(frozen=True)
class BoxPose:
    points: np.ndarray  # (J, 2) photo pixels
    scores: np.ndarray  # (J,) 0..1
    names: tuple[str, ...]  # J names: AP-10K's 17, optionally followed by extras (tail_end)


class PoseModel(Protocol):
    model_id: str
    runtime: str  # what runs its network: 'torch' or 'onnxruntime'

    def predict(self, image: Image.Image, boxes: np.ndarray) -> list[BoxPose]:
        """RGB photo and (N, 4) x1 y1 x2 y2 boxes -> one BoxPose per box."""
