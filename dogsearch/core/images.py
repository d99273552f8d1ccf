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
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from dogsearch.core.errors import InvalidInput, TooLarge, Unavailable, UnsupportedMedia

# HEIF, the format phones store photos in (an iPhone's HEIC, many Android phones'), through libheif (pi-heif: the
# decoder alone, no encoder bundled). Its primary image only: the thumbnails, depth maps and other auxiliary images
# a file carries are never parsed. libheif applies the file's rotation and mirroring itself (the EXIF orientation
# then reads 1). AVIF is Pillow's own.
pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
# The text a PNG's chunks may unpack to, all together: Pillow keeps it in `info` whenever the file is opened, up to
# 64 MB by default, and 64 zTXt chunks of 1 MB of one letter make that a 64 KB file (16 such searches at once grew
# the server 1 GB). A photo's XMP and EXIF take a few KB.
PngImagePlugin.MAX_TEXT_MEMORY = 4 << 20

# Formats a browser or camera produces; anything else PIL happens to parse (PSD, EPS, ...) is refused.
ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "HEIF", "AVIF"})
# The file names of those formats: what a folder of photos is searched for.
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo",
                            ".heic", ".heif", ".avif"})
# The most memory one decode may take by default (its estimated peak, decode_cost): a phone's photo as it comes, an
# iPhone's 24 MP HEIC included (187 MiB), a baseline JPEG of any allowed size shrunk on load, a progressive one of up
# to the pixel limit at 4:2:0 (116 MiB: its coefficients are kept whole) or 33 MP at 4:4:4, a PNG of up to the pixel
# limit (RGB or palette) or 25 MP RGBA. All of a service's decodes share DECODE_MEMORY_BYTES, so one that large goes
# alone.
MAX_DECODE_BYTES = 192 * 1024 * 1024
DECODE_MEMORY_BYTES = 256 * 1024 * 1024
# How long a decode waits for the others in flight to leave it room before the request is answered 503.
DECODE_WAIT_S = 30.0
# The most scans a JPEG may have. libjpeg passes over every block of the image once a scan, whatever the scale it
# decodes to (40 ms a scan at 40 MP here): a 26-byte scan repeated made a 0.5 MB file 13 s of a core's time, 20 MiB
# of them hours. Encoders write 1 (baseline) or about 10 (progressive: libjpeg's 10, mozjpeg's fewer).
MAX_JPEG_SCANS = 64
# The most segments (markers) a JPEG's first image may have. Pillow reads those before the first scan in Python, a
# couple of microseconds each: a 20 MiB JPEG of 5 M empty APP5 segments took 18 s of a core to search. A photo has a
# few tens (APPn, tables, a progressive one's scans and their tables).
MAX_JPEG_SEGMENTS = 1000
# The most chunks a PNG may have, for the same reason: 1.7 M empty chunks (20 MiB) took Pillow 4.8 s each time it
# read the file, a photo of as many bytes 0.08 s. libpng writes 8 KiB of pixels a chunk, 2560 chunks in 20 MiB.
MAX_PNG_CHUNKS = 32768
# The most blocks (extensions' pieces, stray bytes) a GIF may have before its first image, likewise: 20 MiB of empty
# comments took 2.2 s. A photo's GIF has a few (its timing, looping, a comment; an XMP packet some hundreds).
MAX_GIF_BLOCKS = 10_000
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
            # what the sender can do: the size a photo like it may have, or a baseline JPEG (it shrinks while it
            # decodes)
            most = max_decode_bytes / (cost / (width * height)) / 1e6
            raise ImageTooLarge(
                f"too large to decode: a {width}x{height} {im.format} of mode {im.mode} needs about {cost >> 20} MiB, "
                f"limit {max_decode_bytes >> 20} MiB; send it smaller (at most about {most:.1f} megapixels) or as a "
                "baseline JPEG")
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
    """About the most bytes decoding `im` (opened by _open, not loaded; a JPEG after its draft) to an oriented RGB
    image takes at once: the decoded pixels, what the format's decoder holds, the conversion to RGB, and the turned
    copy EXIF orientation asks for (made once the decoded pixels are freed); for a JPEG of several scans, its
    coefficients. From the header only."""
    pixels = im.width * im.height
    per_pixel = _STORED.get(im.mode, 4) + _DECODER.get(im.format, 0) + _TO_RGB.get(im.mode, 4)
    if _header_orientation(im) not in (None, 1):
        per_pixel = max(per_pixel, 8)  # the RGB image and its turned copy
    return pixels * per_pixel + (_jpeg_coefficients(im) if im.format in ("JPEG", "MPO") else 0)


def _jpeg_coefficients(im: Image.Image) -> int:
    """The bytes of the whole-image coefficient buffer libjpeg keeps for a JPEG of several scans (a progressive one:
    6 bytes a pixel at 4:4:4, 8 for CMYK, at its full size whatever the scale it decodes to); 0 for one scan.
    (`_open` counted its scans, and refused one of too many.)"""
    if im.info.get(_SCANS, 0) <= 1 and not im.info.get("progressive"):
        return 0
    scale = im.decoderconfig[0] if im.decoderconfig else 1  # its draft's: the full size, within a block
    width, height = im.width * scale, im.height * scale
    h_most, v_most = max(h for _, h, _, _ in im.layer), max(v for _, _, v, _ in im.layer)
    blocks = sum(-(-width * h // (8 * h_most)) * -(-height * v // (8 * v_most)) for _, h, v, _ in im.layer)
    return blocks * 128  # 64 coefficients of 2 bytes a block


# Where _open leaves a JPEG's scan count in its image's info, for decode_cost.
_SCANS = "dogsearch_scans"
# A JPEG marker: 0xFF (and any fill bytes) before a code that is not a stuffed 0x00 or a restart marker.
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS markers) a JPEG's first image has, up to its EOI: segments are skipped by their lengths,
    as libjpeg does (an EXIF thumbnail's scans, an MPO's other frames are not counted). Refuses one of more than
    MAX_JPEG_SEGMENTS segments or MAX_JPEG_SCANS scans, having read no further."""
    scans, segments, at = 0, 0, 2
    while found := _JPEG_MARKER.search(data, at):
        code, at = found[1][0], found.end()
        if code == 0xD9:  # EOI
            break
        segments += 1
        if segments > MAX_JPEG_SEGMENTS:
            raise ImageTooLarge(f"too many segments to read: a JPEG of more than {MAX_JPEG_SEGMENTS}")
        if code != 0x01:  # all but TEM have a length
            scans += code == 0xDA
            if scans > MAX_JPEG_SCANS:
                raise ImageTooLarge(f"too many scans to decode: a JPEG of more than {MAX_JPEG_SCANS}")
            at += int.from_bytes(data[at:at + 2], "big")
    return scans


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
    # what Pillow reads in Python, one piece at a time, counted before it does
    scans = None
    if data.startswith(b"\xff\xd8"):
        scans = jpeg_scans(data)  # kept for decode_cost: a pass over the whole file (tens of ms for 10 MB)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _count_png_chunks(data)
    elif data[:6] in (b"GIF87a", b"GIF89a"):
        _count_gif_blocks(data)
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
    if scans is not None:
        im.info[_SCANS] = scans
    fmt = im.format or "unknown"
    if fmt not in ALLOWED_FORMATS:
        raise ImageUnsupported(
            f"unsupported image format {fmt}; use one of {', '.join(sorted(ALLOWED_FORMATS))}")
    if fmt == "BMP" and im.info.get("compression") in _BMP_RUN_LENGTH:
        # Pillow decodes these in Python, holding the interpreter's lock: a 40 MP RLE4 of 330 KB took 2 s of a core,
        # one of 19 MB 5 s, and eight at once made other searches wait 5 s. No camera or browser writes them.
        raise ImageUnsupported("a run-length compressed BMP (RLE8, RLE4) is not taken; send it as PNG or JPEG")
    width, height = im.size  # read from the header: no pixels decoded yet
    if width * height > max_pixels:
        raise ImageTooLarge(f"too many pixels: {width}x{height}, limit {max_pixels}")
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ImageTooThin(f"too long and thin: {width}x{height}; a photo's long side may be at most {MAX_ASPECT} "
                           "times its short side")
    return im


def _count_png_chunks(data: bytes) -> None:
    """Refuses a PNG of more than MAX_PNG_CHUNKS chunks up to its IEND, having read no further."""
    at, chunks = 8, 0
    while at + 8 <= len(data) and data[at + 4:at + 8] != b"IEND":
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise ImageTooLarge(f"too many chunks to read: a PNG of more than {MAX_PNG_CHUNKS}")
        at += 12 + int.from_bytes(data[at:at + 4], "big")  # length, type, data, CRC


def _count_gif_blocks(data: bytes) -> None:
    """Refuses a GIF of more than MAX_GIF_BLOCKS blocks before its first image, as Pillow reads them: each piece of
    an extension, and each byte that is none of an extension, an image or the end."""
    at, blocks = 13, 0
    if len(data) > 10 and data[10] & 0x80:  # the global colour table
        at += 3 << ((data[10] & 7) + 1)
    while at < len(data) and data[at] not in b",;":
        if data[at] == 0x21:  # "!": its label, then pieces of up to 255 bytes to an empty one
            at += 2
            while at < len(data):
                size = data[at]
                at, blocks = at + 1 + size, blocks + 1
                if size == 0 or blocks > MAX_GIF_BLOCKS:
                    break
        else:
            at, blocks = at + 1, blocks + 1
        if blocks > MAX_GIF_BLOCKS:
            raise ImageTooLarge(f"too many blocks to read: a GIF of more than {MAX_GIF_BLOCKS} before its image")


# A BMP header's compression: RLE8, RLE4.
_BMP_RUN_LENGTH = (1, 2)
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
        if "MAX_TEXT_" in str(exc):  # PngImagePlugin's limits, on one chunk or all
            raise ImageTooLarge(f"too much text in the PNG's chunks: more than {PngImagePlugin.MAX_TEXT_MEMORY >> 20} "
                                f"MiB unpacked, or {PngImagePlugin.MAX_TEXT_CHUNK >> 20} MiB in one") from exc
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
