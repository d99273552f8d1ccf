"""Small images made on the fly, for uploads of every kind."""
from __future__ import annotations

import io

from PIL import Image


def encode(im: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def solid(color: tuple[int, int, int], size: tuple[int, int] = (64, 48), fmt: str = "JPEG") -> bytes:
    return encode(Image.new("RGB", size, color), fmt)


def halves(left: tuple[int, int, int], right: tuple[int, int, int], size=(64, 48), fmt="PNG") -> bytes:
    im = Image.new("RGB", size, left)
    im.paste(Image.new("RGB", (size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return encode(im, fmt)
