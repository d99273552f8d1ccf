"""Photo -> the API's answer: find the dogs, pose each box, analyse each pose."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dogsearch.core.boxes import Box
from dogsearch.models.detect import Detection, Detector, WholeImageDetector, detect_many
from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.model import PoseModel
from dogsearch.pose.analysis import analyse

GIVEN_SCORE = 1.0  # the score of a box the caller gave: no detector judged it


def covers(box: Sequence[float], width: int, height: int, slack: float = 1.0) -> bool:
    """Whether a box is the whole photo (to a pixel: boxes come rounded)."""
    x0, y0, x1, y1 = box
    return x0 <= slack and y0 <= slack and x1 >= width - slack and y1 >= height - slack


@dataclass
class PosePipeline:
    model: PoseModel
    detector: Detector
    threshold: float = 0.3
    max_dogs: int = 5

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def run(self, image: Image.Image, box: Box | None = None) -> dict:
        return self.run_batch([image], [box])[0]

    def run_batch(self, images: Sequence[Image.Image], boxes: Sequence[Box | None] | None = None) -> list[dict]:
        """Several photos: their dogs found, then every dog's pose, each in one forward where the networks can. A
        photo with a box in `boxes` (a dog the search boxed, or its user marked) is posed in that box alone: the
        detector is not asked."""
        given = list(boxes) if boxes is not None else [None] * len(images)
        todo = [i for i, box in enumerate(given) if box is None]
        detected = dict(zip(todo, detect_many(self.detector, [images[i] for i in todo]), strict=True)) if todo else {}
        # A photo in which the detector boxes no dog is posed whole, scored FALLBACK_SCORE as "no box found": the
        # gateway asks only for photos its own check saw a dog in, and a dog the detector missed still gets a pose.
        found = [[Detection(tuple(box), GIVEN_SCORE)] if box is not None else
                 detected[i][: self.max_dogs] or WholeImageDetector().detect(image)
                 for i, (image, box) in enumerate(zip(images, given, strict=True))]
        items = [(image, np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4))
                 for image, dets in zip(images, found, strict=True)]
        many = getattr(self.model, "predict_many", None)
        poses = many(items) if many else [self.model.predict(image, boxes) for image, boxes in items]
        return [self._answer(image, dets, p, box is not None)
                for image, dets, p, box in zip(images, found, poses, given, strict=True)]

    def _answer(self, image: Image.Image, detections: list[Detection], poses: list, given: bool = False) -> dict:
        dogs = []
        for det, pose in zip(detections, poses, strict=True):
            # the dog's box is the whole photo (none found within it, by this detector or the embedder's, or marked
            # so): where that is a close-up of its face, the pose is the model's guess at a body it cannot see, so
            # clients draw and compare none of it
            whole = covers(det.box, image.width, image.height)
            index = {n: i for i, n in enumerate(pose.names)}
            keypoints = [{"name": name, "x": round(float(pose.points[index[name], 0]), 2),
                          "y": round(float(pose.points[index[name], 1]), 2),
                          "score": round(float(pose.scores[index[name]]), 4)} for name in K.AP10K_NAMES]
            dogs.append({
                "box": [round(float(v), 2) for v in det.box],
                "score": round(float(det.score), 4),
                "given": given,
                "whole_photo": whole,
                "keypoints": keypoints,
                "analysis": analyse(pose.points, pose.scores, pose.names, threshold=self.threshold, box=det.box),
            })
        return {"model": self.model_id, "width": image.width, "height": image.height, "dogs": dogs}
