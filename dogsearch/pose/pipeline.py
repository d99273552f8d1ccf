"""Photo -> the API's answer: find the dogs, pose each box, analyse each pose."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dogsearch.core.boxes import Box
from dogsearch.models.detect import WHOLE_PHOTO_DOG, Detection, Detector, WholeImageDetector, detect_seen
from dogsearch.models.pose import keypoints as K
from dogsearch.models.pose.model import PoseModel
from dogsearch.pose.analysis import analyse

GIVEN_SCORE = 1.0  # the score of a box the caller gave without one: no detector judged it


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
    # False: a photo without a dog is posed whole too (a dog's skeleton over a truck), not answered without dogs
    require_dog: bool = True
    # a photo the detector boxes no dog in is posed whole where the classifier gives it this (None: never)
    whole_photo_dog: float | None = WHOLE_PHOTO_DOG

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def run(self, image: Image.Image, boxes: Sequence[Box | Detection] = ()) -> dict:
        return self.run_batch([image], [boxes])[0]

    def run_batch(self, images: Sequence[Image.Image],
                  boxes: Sequence[Sequence[Box | Detection]] | None = None) -> list[dict]:
        """Several photos: their dogs found, then every dog's pose, each in one forward where the networks can. A
        photo with boxes in `boxes` (the dogs a search boxed, as Detections with their detector's scores, or its
        user marked, given: scored GIVEN_SCORE) is posed in those boxes (the first `max_dogs`): the detector is not
        asked. One the detector boxes no dog in is posed whole, scored FALLBACK_SCORE as "no box found", where the
        dog classifier calls the whole photo a dog (at least `whole_photo_dog`: a close-up, which a search takes
        whole) or a dog is not required; else it is answered with no dogs and what it `seems` to show (the
        classifier's likeliest classes; [] where the detector ran none)."""
        given = [list(b)[: self.max_dogs] for b in boxes] if boxes is not None else [[] for _ in images]
        todo = [i for i, box in enumerate(given) if not box]
        detected, seen = detect_seen(self.detector, [images[i] for i in todo]) if todo else ([], [])
        looked = dict(zip(todo, zip(detected, seen, strict=True), strict=True))
        found, refused = [], {}
        for i, (image, box) in enumerate(zip(images, given, strict=True)):
            dets, photo = looked.get(i, ([], None))
            if box:
                found.append([b if isinstance(b, Detection) else Detection(tuple(b), GIVEN_SCORE) for b in box])
            elif dets or not self.require_dog or (photo is not None and self.whole_photo_dog is not None
                                                  and photo.dog >= self.whole_photo_dog):
                found.append(dets[: self.max_dogs] or WholeImageDetector().detect(image))
            else:
                found.append([])
                refused[i] = [] if photo is None else photo.seems()
        items = [(image, np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4))
                 for image, dets in zip(images, found, strict=True) if dets]
        many = getattr(self.model, "predict_many", None)
        poses = iter((many(items) if many else [self.model.predict(*item) for item in items]) if items else [])
        answers = [self._answer(image, dets, next(poses) if dets else [],
                                [not isinstance(b, Detection) for b in box] or [False] * len(dets))
                   for image, dets, box in zip(images, found, given, strict=True)]
        for i, seems in refused.items():
            answers[i]["seems"] = seems
        return answers

    def _answer(self, image: Image.Image, detections: list[Detection], poses: list, given: list[bool]) -> dict:
        """`given`: each dog's box came from the caller without a score."""
        dogs = []
        for det, pose, was_given in zip(detections, poses, given, strict=True):
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
                "given": was_given,
                "whole_photo": whole,
                "keypoints": keypoints,
                "analysis": analyse(pose.points, pose.scores, pose.names, threshold=self.threshold, box=det.box),
            })
        return {"model": self.model_id, "width": image.width, "height": image.height, "dogs": dogs}
