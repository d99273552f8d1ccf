"""Top-down crops: a dog box -> a square model input, and model coordinates back to the photo.

One 2x3 affine matrix maps photo pixels to input pixels (continuous coordinates, pixel i covers [i, i+1)).
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image

# The crop is this much larger than the box's longer side, so paws and tail at the box edge stay inside.
BOX_PADDING = 1.25


def box_affine(box, size: int, *, scale: float = 1.0, rotation_deg: float = 0.0, shift=(0.0, 0.0),
               flip: bool = False) -> np.ndarray:
    """Photo -> input matrix for a square crop of `size` px around `box` (x1, y1, x2, y2)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0) * BOX_PADDING * scale
    cx = (x1 + x2) / 2 + shift[0] * side
    cy = (y1 + y2) / 2 + shift[1] * side
    k = size / side
    a = math.radians(rotation_deg)
    cos, sin = math.cos(a) * k, math.sin(a) * k
    m = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=np.float64)
    m[:, 2] = np.array([size / 2, size / 2]) - m[:, :2] @ np.array([cx, cy])
    if flip:
        m[0] = -m[0]
        m[0, 2] += size
    return m


def invert(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp(image: Image.Image, m: np.ndarray, size: int) -> Image.Image:
    """The crop itself: PIL wants the input -> photo matrix."""
    inv = invert(m)
    return image.transform((size, size), Image.Transform.AFFINE, data=tuple(inv.reshape(-1)),
                           resample=Image.Resampling.BILINEAR, fillcolor=(127, 127, 127))
