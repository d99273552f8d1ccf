"""Dog boxes in pixel coordinates ``(x0, y0, x1, y1)``: the crop a model sees around a dog, and overlap.

The crop keeps a margin around the box (a share of the box's own width and height on each side, clipped to the
photo) because a detector's box is tight and cuts ears and tails, and some context of the coat helps retrieval.
"""
from __future__ import annotations

from PIL import Image

Box = tuple[float, float, float, float]

# Share of the box's width / height added on each side. 0.3: `dogsearch eval crops`' choice (docs/detection.md,
# "Embed the dog"): the least loss against the whole photo on plain photos, and within 0.005 mAP of the best margin
# on small dogs; a tight crop (0) loses most on plain photos. Measured with saliency boxes: rerun with a new detector.
DEFAULT_MARGIN = 0.3


def expand(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``margin`` of its size on each side, rounded outwards to whole pixels inside the photo."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, int(x0 - dx)), max(0, int(y0 - dy))
    right, bottom = min(width, int(-(-(x1 + dx) // 1))), min(height, int(-(-(y1 + dy) // 1)))
    if right <= left or bottom <= top:
        raise ValueError(f"box {box} lies outside the {width}x{height} photo")
    return left, top, right, bottom


def crop(image: Image.Image, box: Box, margin: float = DEFAULT_MARGIN) -> Image.Image:
    """The part of ``image`` around ``box`` that a model sees."""
    return image.crop(expand(box, margin, image.width, image.height))


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0
