"""Dog boxes in pixel coordinates ``(x0, y0, x1, y1)``: the crop a model sees around a dog, and overlap.

The crop keeps a margin around the box (a share of the box's own width and height on each side, clipped to the
photo) because a detector's box is tight and cuts ears and tails, and some context of the coat helps retrieval.
"""
from __future__ import annotations

import math

from PIL import Image

from dogsearch.core.errors import InvalidInput
from dogsearch.core.images import MAX_ASPECT

Box = tuple[float, float, float, float]

# The least a box a user marks may measure on each side, in the photo's pixels, once clipped to the photo: the
# models scale a crop to 224 px, and a smaller one holds a speck, not a dog.
MIN_MARKED_SIDE = 16
# How far past the photo's edges a marked box may reach, as a share of the photo's width (left, right) and height
# (top, bottom), and still be clipped to it: a drag that overshoots the edge. Further, the box was marked in other
# coordinates (another size of the photo, before its EXIF turn) or for another photo: clipped, it would be the whole
# photo, not the dog marked.
MARKED_SLACK = 0.1


class BadBox(InvalidInput):
    """A box a user marked that is malformed, or holds too little of the photo."""

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
    # A sliver (a detector's, or a photo's edge) is widened to MAX_ASPECT: a model resizes a crop by its short side.
    if (right - left) * MAX_ASPECT < bottom - top:
        left, right = _widened(left, right, -(-(bottom - top) // MAX_ASPECT), width)
    elif (bottom - top) * MAX_ASPECT < right - left:
        top, bottom = _widened(top, bottom, -(-(right - left) // MAX_ASPECT), height)
    return left, top, right, bottom


def _widened(start: int, end: int, size: int, limit: int) -> tuple[int, int]:
    """[start, end) grown about its middle to `size` (at most `limit`), inside [0, limit)."""
    size = min(size, limit)
    start = min(max(0, (start + end - size) // 2), limit - size)
    return start, start + size


def crop(image: Image.Image, box: Box, margin: float = DEFAULT_MARGIN) -> Image.Image:
    """The part of ``image`` around ``box`` that a model sees."""
    return image.crop(expand(box, margin, image.width, image.height))


SMALL_SHARE = 0.30  # a dog covering less of its photo than this is "small" (issue 18)


def share(box: Box, width: int, height: int) -> float:
    """The part of a ``width`` x ``height`` photo that ``box`` covers."""
    return area(box) / max(width * height, 1)


def area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    inter = area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def parse_box(text: str) -> Box:
    """A box as a form field writes it, "x0,y0,x1,y1" in the photo's pixels (EXIF orientation applied); BadBox when
    it is not four finite numbers with x0 < x1 and y0 < y1."""
    try:
        values = [float(p) for p in text.split(",")]
    except ValueError:
        values = []
    return as_box(values, text[:64])


def box_text(box: Box) -> str:
    """A box as a form field writes it (what parse_box reads): "x0,y0,x1,y1", each as short as it is exact."""
    return ",".join(f"{v:g}" for v in box)


def as_box(values: object, shown: str | None = None) -> Box:
    """Four finite numbers x0 < x1, y0 < y1 as a box (a JSON list, say); BadBox naming `shown` (or them) else."""
    shown = shown if shown is not None else str(values)[:64]
    numbers = isinstance(values, list | tuple) and len(values) == 4 and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    if not numbers:
        raise BadBox(f"box {shown!r}: four numbers x0,y0,x1,y1 in the photo's pixels")
    x0, y0, x1, y1 = (float(v) for v in values)  # type: ignore[union-attr]
    if x1 <= x0 or y1 <= y0:
        raise BadBox(f"box {shown!r}: x0 < x1 and y0 < y1 (the top left corner, then the bottom right)")
    return x0, y0, x1, y1


def clip_marked(box: Box, width: int, height: int) -> Box:
    """The part of a marked box inside a `width` x `height` photo, rounded to tenths of a pixel; BadBox when that is
    under MIN_MARKED_SIDE on a side (or the box misses the photo), or when the box reaches further past the photo's
    edges than MARKED_SLACK of its size."""
    x0, y0 = max(0.0, box[0]), max(0.0, box[1])
    x1, y1 = min(float(width), float(box[2])), min(float(height), float(box[3]))
    if x1 - x0 < MIN_MARKED_SIDE or y1 - y0 < MIN_MARKED_SIDE:
        raise BadBox(f"box {[round(v, 1) for v in box]} holds under {MIN_MARKED_SIDE}x{MIN_MARKED_SIDE} pixels of "
                     f"the {width}x{height} photo: mark the whole dog")
    dx, dy = MARKED_SLACK * width, MARKED_SLACK * height
    if -box[0] > dx or box[2] - width > dx or -box[1] > dy or box[3] - height > dy:
        raise BadBox(f"box {[round(v, 1) for v in box]} reaches past the {width}x{height} photo: mark the dog inside "
                     f"it, x 0..{width} and y 0..{height} (at most {MARKED_SLACK:.0%} of its size past an edge is "
                     "clipped)")
    if max(x1 - x0, y1 - y0) > MAX_ASPECT * min(x1 - x0, y1 - y0):
        raise BadBox(f"box {[round(v, 1) for v in box]} is too long and thin (in the {width}x{height} photo, its long "
                     f"side may be at most {MAX_ASPECT} times its short side): mark the whole dog")
    return round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)
