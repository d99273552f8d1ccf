"""Decoding untrusted uploads into RGB images, with a clear reason for every rejection."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Formats a browser or camera produces; anything else PIL happens to parse (PSD, EPS, ...) is refused.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})


class ImageRejected(ValueError):
    """An upload that is not a usable image; `status_code` is the HTTP status to answer with."""

    def __init__(self, reason: str, status_code: int = 422) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, first frame of an animation; maybe shrunk on load
    format: str
    width: int  # the photo's own size, EXIF orientation applied, whatever size `image` was decoded at
    height: int


def check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("empty file: zero bytes", 422)
    if len(data) > max_bytes:
        raise ImageRejected(f"file too large: {len(data)} bytes, limit {max_bytes}", 413)


# EXIF orientations that turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}
_ORIENTATION = 0x0112


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> DecodedImage:
    """Checks and decodes a photo. With `min_side`, a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's
    DCT scaling: "shrink on load", as thumbnailers do) as long as both sides stay at least `min_side`: a 12 MP photo
    decodes 3x faster and every later resize has 16-64x fewer pixels to read. The whole file is decoded either
    way, so a truncated one is still found."""
    check_size(data, max_bytes)
    try:
        with warnings.catch_warnings():
            # We enforce our own pixel limit below; PIL's warning would only go to the log.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            fmt = im.format or "unknown"
            if fmt not in ALLOWED_FORMATS:
                raise ImageRejected(
                    f"unsupported image format {fmt}; use one of {', '.join(sorted(ALLOWED_FORMATS))}", 415
                )
            width, height = im.size  # read from the header: no pixels decoded yet
            if width * height > max_pixels:
                raise ImageRejected(f"too many pixels: {width}x{height}, limit {max_pixels}", 413)
            im.seek(0)
            if min_side and fmt in ("JPEG", "MPO"):
                im.draft(None, (min_side, min_side))  # only picks the scale; pixels come with load()
            im.load()  # decodes everything, so a truncated file fails here and not later
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"too many pixels: {exc}", 413) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("not an image (or an unsupported format)", 415) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image: {exc}", 422) from exc
    if im.getexif().get(_ORIENTATION) in _QUARTER_TURNS:
        width, height = height, width
    ImageOps.exif_transpose(im, in_place=True)  # in place: a 12 MP photo's pixels are 36 MB to copy
    return DecodedImage(image=to_rgb(im), format=fmt, width=width, height=height)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency over white, 16-bit and float scaled rather than clipped. An RGB
    image comes back as it is, not copied."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def thumbnail_jpeg(im: Image.Image, size: int, quality: int = 85) -> bytes:
    thumb = im.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()
