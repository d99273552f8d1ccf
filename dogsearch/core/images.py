"""Decoding untrusted uploads into RGB images, with a clear reason for every rejection."""
from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pi_heif
from PIL import Image, UnidentifiedImageError

from dogsearch.core.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMedia

# HEIF, the format phones store photos in (an iPhone's HEIC, many Android phones'), through libheif (pi-heif: the
# decoder alone, no encoder bundled). Its primary image only: the thumbnails, depth maps and other auxiliary images
# a file carries are never parsed. libheif applies the file's rotation and mirroring itself (the EXIF orientation
# then reads 1). AVIF is Pillow's own.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Formats a browser or camera produces; anything else PIL happens to parse (PSD, EPS, ...) is refused.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF", "AVIF"})
# The file names of those formats: what a folder of photos is searched for.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo",
                            ".heic", ".heif", ".avif"})
# The most memory one decode may take by default (its estimated peak, decode_cost): a phone's photo as it comes, an
# iPhone's 24 MP HEIC included (187 MiB), a JPEG of any allowed size shrunk on load, a PNG of up to the pixel limit
# (RGB or palette) or 25 MP RGBA. All of a service's decodes share DECODE_MEMORY_BYTES, so one that large goes alone.
MAX_DECODE_BYTES = 192 * 1024 * 1024
DECODE_MEMORY_BYTES = 256 * 1024 * 1024
# How long a decode waits for the others in flight to leave it room before the request is answered 503.
DECODE_WAIT_S = 30.0
# The most a photo's long side may be its short side's multiple (a phone's panorama is 4-10). Models resize a photo
# by its short side: a 1 x 100,000 PNG of a few hundred bytes, under any pixel limit, would become 256 x 25.6 M.
MAX_ASPECT = 20


class ImageRejected(InvalidInput):
    """An upload that is not a usable image: empty, truncated or corrupt."""


class ImageTooLarge(TooLarge, ImageRejected):
    """Too many bytes or pixels."""


class ImageUnsupported(UnsupportedMedia, ImageRejected):
    """Not an image, or not of a format we take."""


class ImageTooThin(ImageRejected):
    """Its long side is over MAX_ASPECT times its short side."""


class DecodersBusy(Unavailable):
    """The decodes in flight hold the memory this one would need for longer than it may wait: retry soon."""


class DecodeBudget:
    """The memory all decodes of a service may hold at once: a decode reserves its estimated peak and waits while
    the others leave too little, so N decodes at once never take more than `total_bytes` together, while small
    ones (a JPEG shrunk on load: a few MB) run side by side."""

    def __init__(self, total_bytes: int, wait_s: float = DECODE_WAIT_S) -> None:
        self.total, self.wait_s, self.used = total_bytes, wait_s, 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.total)  # a decode larger than the whole budget runs alone
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + nbytes <= self.total, timeout=self.wait_s):
                raise DecodersBusy(f"busy decoding other photos: retry (waited {self.wait_s:.0f}s for memory)")
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # the photo's own size, EXIF orientation applied
    height: int


@dataclass(frozen=True)
class DecodedImage(ImageInfo):
    image: Image.Image  # RGB, EXIF orientation applied, first frame of an animation; maybe shrunk on load


@dataclass(frozen=True)
class ImageLimits:
    """A service's limits on the photos it takes; `probe` and `decode` check against them."""

    max_bytes: int
    max_pixels: int
    max_decode_bytes: int = MAX_DECODE_BYTES
    budget: DecodeBudget | None = field(default=None, compare=False)  # shared by the decodes of one service

    def probe(self, data: bytes) -> ImageInfo:
        return probe_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)

    def decode(self, data: bytes, *, min_side: int | None = None) -> DecodedImage:
        return decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, min_side=min_side,
                            max_decode_bytes=self.max_decode_bytes, budget=self.budget)

    def exif(self, data: bytes) -> Image.Exif:
        return read_exif(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)


def check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise ImageRejected("empty file: zero bytes")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"file too large: {len(data)} bytes, limit {max_bytes}")


# EXIF orientations that turn the picture a quarter: its width and height swap.
_QUARTER_TURNS = {5, 6, 7, 8}
# How each EXIF orientation is undone (as ImageOps.exif_transpose does).
UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90}
_ORIENTATION = 0x0112


def probe_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Checks a photo's size, format and pixel count from its header alone, decoding no pixels (well under a
    millisecond): for a process that only passes the photo on to the one that decodes it. A truncated file passes
    here; its decode fails."""
    with _reading():
        im = _open(data, max_bytes, max_pixels)
        return _info(im)


def read_exif(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Exif:
    """A photo's EXIF (empty when it has none), checked as probe_image checks the photo: no pixels decoded."""
    with _reading():
        im = _open(data, max_bytes, max_pixels)
        # Not im.getexif(): a PNG whose header holds none decodes the whole image to look for one after the pixels,
        # outside the decode budget. The EXIF a format keeps in its header (JPEG, WebP, HEIF, AVIF, TIFF, PNG's
        # before its pixels) is read as Pillow reads it.
        return Image.Image.getexif(im)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None,
                 max_decode_bytes: int | None = None, budget: DecodeBudget | None = None) -> DecodedImage:
    """Checks and decodes a photo. With `min_side`, a JPEG may be decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's
    DCT scaling: "shrink on load", as thumbnailers do) as long as both sides stay at least `min_side`: a 12 MP photo
    decodes 3x faster and every later resize has 16-64x fewer pixels to read. Other formats are decoded in full and
    then averaged down alike (_shrink). The whole file is decoded either way, so a truncated one is still found.

    The decode's peak memory is estimated from the header first (decode_cost): over `max_decode_bytes` it is
    refused (a 5 KB palette PNG can declare 40 MP); under, it waits for room in `budget`, if any."""
    with _reading():
        # An image opens at the frame a viewer shows: an animation's first, a HEIF's primary (not always its first).
        im = _open(data, max_bytes, max_pixels)
        width, height = im.size  # the photo's own, before any shrink on load
        if min_side and im.format in ("JPEG", "MPO"):
            im.draft(None, (min_side, min_side))  # only picks the scale; pixels come with load()
        orientation = _header_orientation(im)
        cost = decode_cost(im)
        if max_decode_bytes is not None and cost > max_decode_bytes:
            # what the sender can do: the size a photo like it may have, or a JPEG (it shrinks while it decodes)
            most = max_decode_bytes / (cost / (im.width * im.height)) / 1e6
            raise ImageTooLarge(
                f"too large to decode: a {im.width}x{im.height} {im.format} of mode {im.mode} needs about "
                f"{cost >> 20} MiB, limit {max_decode_bytes >> 20} MiB; send it smaller (at most about "
                f"{most:.1f} megapixels) or as a JPEG")
        with budget.reserve(cost) if budget else _nothing():
            im.load()  # decodes everything, so a truncated file fails here and not later
            fmt = im.format
            if orientation is None and fmt == "PNG":
                orientation = im.getexif().get(_ORIENTATION)  # a PNG's EXIF may come after its pixels
            rgb = to_rgb(im)
            del im  # the decoded pixels, once converted: not kept while the converted ones are turned
            if orientation in _QUARTER_TURNS:
                width, height = height, width
            if min_side and fmt not in ("JPEG", "MPO"):
                rgb = _shrink(rgb, min_side)  # inside the budget: the full-size pixels are gone when it is left
            # Turned after the conversion (an RGB copy, whatever the decoded mode); Pillow turns a TIFF as it loads.
            if orientation in UNDO_ORIENTATION and fmt != "TIFF":
                rgb = rgb.transpose(UNDO_ORIENTATION[orientation])
    return DecodedImage(image=rgb, format=fmt, width=width, height=height)


def _shrink(im: Image.Image, min_side: int) -> Image.Image:
    """What a JPEG's draft does while decoding, for a format that cannot: the decoded pixels averaged 2x2, 4x4 or 8x8
    as long as both sides stay at least `min_side`, so that a request holds a 40 MP PNG's full-size pixels only
    while it decodes (and every later resize reads 4-64x fewer)."""
    factor = 8
    while factor > 1 and min(im.size) // factor < min_side:
        factor //= 2
    return im.reduce(factor) if factor > 1 else im


# Bytes a pixel takes in Pillow's memory by mode (RGB is stored as 4 bytes); modes not named: 4.
_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
# Bytes a pixel the conversion to RGB adds (to_rgb): the RGB image, and what it makes on the way.
_TO_RGB = {"RGB": 0, "RGBA": 4, "LA": 8, "La": 8, "PA": 8, "RGBa": 8,
           "I;16": 14, "I;16L": 14, "I;16B": 14, "I;16N": 14, "I": 14, "F": 14}
# Bytes a pixel a format's decoder holds besides the image (WebP: its RGBA canvas and a copy, measured 16 a
# pixel in all for RGB; libtiff: a whole RGBA image for some compressions; libheif: its YUV planes and RGB, a peak
# of 7.5-7.7 a pixel in all for 8- and 10-bit HEIC; libavif: 9.2-9.4 in all).
_DECODER = {"WEBP": 12, "TIFF": 4, "HEIF": 4, "AVIF": 6}


def decode_cost(im: Image.Image) -> int:
    """About the most bytes decoding `im` (opened, not loaded; a JPEG after its draft) to an oriented RGB image
    takes at once: the decoded pixels, what the format's decoder holds, the conversion to RGB, and the turned copy
    EXIF orientation asks for (made once the decoded pixels are freed). From the header only."""
    pixels = im.width * im.height
    per_pixel = _STORED.get(im.mode, 4) + _DECODER.get(im.format, 0) + _TO_RGB.get(im.mode, 4)
    if _header_orientation(im) not in (None, 1):
        per_pixel = max(per_pixel, 8)  # the RGB image and its turned copy
    return pixels * per_pixel


def _header_orientation(im: Image.Image) -> int | None:
    # A PNG's getexif() decodes the whole image to look for EXIF after the pixels: read only what came before.
    if im.format == "PNG" and "exif" not in im.info:
        return None
    return im.getexif().get(_ORIENTATION)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _open(data: bytes, max_bytes: int, max_pixels: int) -> Image.Image:
    check_size(data, max_bytes)
    with warnings.catch_warnings():
        # We enforce our own pixel limit below; PIL's warning would only go to the log.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=_OPENERS)  # Pillow tries no other parser on untrusted bytes
        except Image.DecompressionBombError as exc:  # Pillow's own limit, far above ours: say ours
            found = re.search(r"\((\d+) pixels\)", str(exc))
            raise ImageTooLarge(f"too many pixels: {found[1] if found else 'over ' + str(Image.MAX_IMAGE_PIXELS)}, "
                                f"limit {max_pixels}") from exc
        except UnidentifiedImageError as exc:
            # A file that starts as a format we take but cannot be opened is damaged (an upload cut short within
            # its header, a HEIF or AVIF anywhere: they are parsed whole), not a foreign format.
            if (started := _starts_as(data)) is None:
                raise
            raise ImageRejected(f"truncated or corrupt image: the file starts as {started} but cannot be read") from exc
    fmt = im.format or "unknown"
    if fmt not in ALLOWED_FORMATS:
        raise ImageUnsupported(
            f"unsupported image format {fmt}; use one of {', '.join(sorted(ALLOWED_FORMATS))}")
    width, height = im.size  # read from the header: no pixels decoded yet
    if width * height > max_pixels:
        raise ImageTooLarge(f"too many pixels: {width}x{height}, limit {max_pixels}")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageTooThin(f"too long and thin: {width}x{height}; a photo's long side may be at most {MAX_ASPECT} "
                           "times its short side")
    return im


# Pillow's openers of the allowed formats (an MPO is opened by the JPEG one).
_OPENERS = tuple(sorted(ALLOWED_FORMATS - {"MPO"}))
# The ISO base media file brands of HEIF and AVIF images (a file's "ftyp" box, its first).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}


def _starts_as(data: bytes) -> str | None:
    """The allowed format whose signature `data` starts with, if any."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return "AVIF" if data[8:12] in _AVIF_BRANDS else "HEIF" if data[8:12] in _HEIF_BRANDS else None
    return None  # BMP's "BM" is too short to tell a damaged bitmap from any file


def _info(im: Image.Image) -> ImageInfo:
    width, height = im.size
    if _header_orientation(im) in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(format=im.format, width=width, height=height)


@contextmanager
def _reading() -> Iterator[None]:
    """PIL's errors as the reasons a photo is refused."""
    try:
        yield
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:  # a frame or tile past Pillow's own limit (the header passed ours)
        raise ImageTooLarge("too many pixels") from exc
    except UnidentifiedImageError as exc:
        raise ImageUnsupported(f"not an image, or an unsupported image format; use one of "
                               f"{', '.join(sorted(ALLOWED_FORMATS))}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(f"truncated or corrupt image: {exc}") from exc


def to_rgb(im: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency over white, 16-bit and float scaled rather than clipped. An RGB
    image comes back as it is, not copied; a palette image with transparency has its palette changed in place
    (the decode's own image: a copy would cost a byte a pixel)."""
    if im.mode == "RGB":
        return im
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")
    if im.mode == "P":
        # Transparency over white in the palette itself, then straight to RGB: 5 bytes a pixel at most,
        # where P -> RGBA -> composite -> RGB took 21.
        if _palette_on_white(im):
            return im.convert("RGB")
        im = im.convert("RGBA")  # a palette with alpha of its own (not from a file we take): the long way
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba)  # over white by the alpha, into the RGB image: no RGBA copies
        return out
    return im.convert("RGB")


def _palette_on_white(im: Image.Image) -> bool:
    """Blends a palette image's transparency (a transparent index, or an alpha per entry) over white into its
    palette's colours, in place. False when its palette is not plain RGB."""
    if im.palette is not None and im.palette.mode != "RGB":
        return False
    transparency = im.info.get("transparency")
    if transparency is None or im.palette is None:
        return True
    colours = im.getpalette("RGB") or []
    count = len(colours) // 3
    if isinstance(transparency, int):
        alphas = [0 if i == transparency else 255 for i in range(count)]
    else:
        alphas = list(transparency[:count]) + [255] * (count - len(transparency))
    flat = [round(c * a / 255 + 255 * (1 - a / 255)) for i, a in enumerate(alphas) for c in colours[3 * i:3 * i + 3]]
    im.info.pop("transparency", None)
    im.putpalette(flat, "RGB")
    return True


def thumbnail_jpeg(im: Image.Image, size: int, quality: int = 85) -> bytes:
    thumb = im.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    # Pillow writes what `info` holds (a JPEG's or a GIF's comment: "OWNER=Jane Doe, 12 Secret Street") into the
    # JPEG: a thumbnail carries its pixels and their colour profile only, as the public copies do (core/exif.py)
    thumb.info = {k: v for k, v in im.info.items() if k == "icc_profile"}
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()
