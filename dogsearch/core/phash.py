"""Perceptual hashes: the same photo resized or recompressed keeps (nearly) the same 64-bit hash.

dHash: the picture shrunk to 9x8 grey pixels; each bit says whether a pixel is brighter than its right
neighbour. Near-duplicates are within a few bits; unrelated photos differ in about half of them."""
from __future__ import annotations

import numpy as np
from PIL import Image

BITS = 64
# Within this many differing bits two photos are near-duplicates (resized/recompressed copies measured 0-5 bits
# on the sample gallery, down to 30% size at JPEG quality 50; distinct photos were 17 or more apart).
NEAR_DISTANCE = 5
# Split into NEAR_DISTANCE + 1 bands: two hashes within NEAR_DISTANCE bits share at least one band exactly
# (pigeonhole), so an exact lookup per band finds every candidate.
BANDS = ((0, 11), (11, 22), (22, 33), (33, 44), (44, 54), (54, 64))


def dhash(image: Image.Image) -> int:
    grey = image.convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    px = np.asarray(grey, dtype=np.int16)
    bits = (px[:, 1:] > px[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def to_hex(value: int) -> str:
    return f"{value:016x}"


def distance(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def bands(value: int) -> list[str]:
    """Band keys ("<band index>:<band bits>") under which a hash is filed and looked up."""
    return [f"{i}:{(value >> (BITS - end)) & ((1 << (end - start)) - 1):x}" for i, (start, end) in enumerate(BANDS)]
