from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.core.images import (
    MAX_DECODE_BYTES,
    ImageLimits,
    ImageRejected,
    ImageTooLarge,
    ImageTooThin,
    ImageUnsupported,
    decode_image,
    thumbnail_jpeg,
)
from tests.images import encode, solid

LIMITS = {"max_bytes": 100_000, "max_pixels": 1_000_000}


def rejected(data: bytes, **limits) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        decode_image(data, **(LIMITS | limits))
    return info.value


def test_plain_jpeg_decodes_to_rgb():
    out = decode_image(solid((200, 10, 10), (40, 30)), **LIMITS)
    assert (out.format, out.width, out.height, out.image.mode) == ("JPEG", 40, 30, "RGB")
    assert abs(out.image.getpixel((20, 15))[0] - 200) < 4


@pytest.mark.parametrize(
    ("data", "kind", "words"),
    [
        (b"", ImageRejected, "empty"),
        (b"this is not an image at all", ImageUnsupported, "not an image"),
        (solid((1, 2, 3))[:300], ImageRejected, "truncated"),
        (b"\x00\x00\x00\x18ftypisom" + bytes(200), ImageUnsupported, "not an image"),  # a phone's video: HEIF's box
    ],
    ids=["zero-bytes", "text", "truncated-jpeg", "mp4-video"],
)
def test_bad_files_are_rejected_with_a_reason(data, kind, words):
    err = rejected(data)
    assert type(err) is kind
    assert words in err.reason


def test_too_many_bytes_is_413():
    err = rejected(solid((1, 2, 3), (200, 200)), max_bytes=1024)
    assert type(err) is ImageTooLarge and "too large" in err.reason


def test_decompression_bomb_is_refused_before_decoding():
    # A 1-bit PNG of 20000 x 20000 is tiny on disk but 400 Mpx once decoded.
    bomb = encode(Image.new("1", (20_000, 20_000)), "PNG")
    assert len(bomb) < 100_000
    err = rejected(bomb)
    assert type(err) is ImageTooLarge and "too many pixels" in err.reason


def test_a_bomb_past_pillows_own_limit_names_its_pixels_and_our_limit():
    bomb = encode(Image.new("1", (20_000, 10_000)), "PNG")  # 200 MP: Pillow refuses it itself, in its words
    err = rejected(bomb, max_bytes=1_000_000)
    assert type(err) is ImageTooLarge and err.reason == "too many pixels: 200000000, limit 1000000"


@pytest.mark.parametrize("size", [(1, 100_000), (60_000, 10), (100, 2_001)])
def test_a_long_thin_image_is_refused_from_its_header(size):
    """A few hundred bytes under any pixel limit, which a model resizing it by its short side would make gigabytes."""
    err = rejected(encode(Image.new("L", size, 255), "PNG"), max_bytes=1_000_000)
    assert type(err) is ImageTooThin and "too long and thin" in err.reason and err.code == "image_too_thin"


def test_a_panorama_is_not_thin():
    assert decode_image(encode(Image.new("L", (2_000, 100), 255), "PNG"), **LIMITS).width == 2_000


def test_unsupported_format_is_415():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "ICO")
    err = rejected(buf.getvalue())
    assert type(err) is ImageUnsupported and "unsupported image format" in err.reason


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (60, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = decode_image(encode(im, "JPEG", exif=exif), **LIMITS)
    assert (out.width, out.height) == (20, 60)


def _gradient(size: tuple[int, int]) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    return Image.fromarray(np.stack([np.tile(x, (size[1], 1))] * 3, axis=-1))


@pytest.mark.parametrize(("size", "min_side", "decoded"), [
    ((2000, 1500), 256, (500, 375)),   # 1/4: 1/8 would leave 188 px
    ((2000, 1500), 700, (1000, 750)),  # 1/2
    ((2000, 1500), 1600, (2000, 1500)),  # any shrink would go below: decoded in full
    ((300, 200), 256, (300, 200)),
])
def test_a_large_jpeg_is_shrunk_on_load_down_to_min_side(size, min_side, decoded):
    data = encode(_gradient(size), quality=90)
    out = decode_image(data, max_bytes=10_000_000, max_pixels=10_000_000, min_side=min_side)
    assert out.image.size == decoded
    assert (out.width, out.height) == size  # the photo's own size, not the decoded one
    full = decode_image(data, max_bytes=10_000_000, max_pixels=10_000_000).image
    assert full.size == size
    # The same picture: the shrunk one against the full one resized alike.
    assert np.abs(np.asarray(full.resize(decoded), dtype=int) - np.asarray(out.image, dtype=int)).mean() < 3


def test_shrink_on_load_keeps_the_oriented_size_and_shrinks_other_formats_after_decoding():
    im = _gradient((2000, 1000))
    exif = im.getexif()
    exif[0x0112] = 6  # rotated a quarter turn
    out = decode_image(encode(im, exif=exif), max_bytes=10_000_000, max_pixels=10_000_000, min_side=200)
    assert out.image.size == (250, 500) and (out.width, out.height) == (1000, 2000)
    png = decode_image(encode(im, "PNG"), max_bytes=10_000_000, max_pixels=10_000_000, min_side=200)
    assert png.image.size == (500, 250)  # 1/4, averaged once decoded: 1/8 would leave 125 px
    assert decode_image(encode(im, "PNG"), max_bytes=10_000_000, max_pixels=10_000_000).image.size == (2000, 1000)
    truncated = encode(im, quality=90)
    with pytest.raises(ImageRejected) as info:
        decode_image(truncated[: len(truncated) // 2], max_bytes=10_000_000, max_pixels=10_000_000, min_side=200)
    assert type(info.value) is ImageRejected  # truncated, not too large or of another format


def test_rgba_is_composited_on_white():
    im = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    out = decode_image(encode(im, "PNG"), **LIMITS)
    assert out.image.getpixel((5, 5)) == (255, 255, 255)


def test_greyscale_and_cmyk_become_rgb():
    grey = decode_image(encode(Image.new("L", (8, 8), 128), "PNG"), **LIMITS)
    assert grey.image.mode == "RGB" and grey.image.getpixel((1, 1)) == (128, 128, 128)
    cmyk = decode_image(encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), **LIMITS)
    r, g, b = cmyk.image.getpixel((1, 1))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_is_scaled_not_clipped():
    arr = np.zeros((8, 8), dtype=np.uint16)
    arr[:, 4:] = 60_000
    out = decode_image(encode(Image.fromarray(arr), "PNG"), **LIMITS)
    assert out.image.getpixel((1, 1)) == (0, 0, 0)
    assert out.image.getpixel((6, 1)) == (255, 255, 255)


def test_animated_gif_uses_its_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = decode_image(buf.getvalue(), **LIMITS)
    r, g, b = out.image.getpixel((8, 8))
    assert g > 200 and b < 50


def test_thumbnail_keeps_aspect_and_bounds():
    im = Image.new("RGB", (400, 200), (10, 20, 30))
    thumb = Image.open(io.BytesIO(thumbnail_jpeg(im, 100)))
    assert thumb.format == "JPEG" and thumb.size == (100, 50)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_a_thumbnail_keeps_no_comment(fmt):
    """A photo's comment ("OWNER=Jane Doe, 12 Secret Street") reached every reader's thumbnail: Pillow writes what
    `info` holds."""
    photo = encode(Image.new("RGB", (400, 300), (120, 60, 30)), fmt, comment=b"OWNER=Jane Doe, 12 Secret Street")
    decoded = Image.open(io.BytesIO(photo)).convert("RGB")  # as decode_image gives it: its info kept
    assert b"Jane Doe" in decoded.info["comment"]
    assert b"Jane Doe" not in thumbnail_jpeg(decoded, 100)


def _palette_bomb(size=(8000, 5000), **save) -> bytes:
    im = Image.new("P", size, 0)
    im.putpalette([0, 0, 0, 255, 0, 0] * 128)
    return encode(im, "PNG", **save)


def test_a_palette_png_bomb_is_refused_from_its_header_by_decode_memory():
    bomb = _palette_bomb()  # 40 MP declared in ~40 KB: passes the pixel cap, ~200 MB to decode
    with pytest.raises(ImageTooLarge) as info:
        decode_image(bomb, max_bytes=100_000, max_pixels=40_000_000, max_decode_bytes=128 << 20)
    assert "too large to decode" in info.value.reason and "PNG" in info.value.reason


def test_decode_cost_counts_the_conversions_and_jpeg_shrink_on_load():
    from dogsearch.core.images import _open, decode_cost

    def cost(data, min_side=None):
        im = _open(data, 1 << 30, 1 << 30)
        if min_side:
            im.draft(None, (min_side, min_side))
        return decode_cost(im) / (im.width * im.height), im.size

    assert cost(encode(Image.new("P", (100, 100)), "PNG"))[0] == 5  # P, then RGB: no RGBA detour
    assert cost(encode(Image.new("RGBA", (100, 100)), "PNG"))[0] == 8
    assert cost(encode(Image.new("RGB", (100, 100)), "PNG"))[0] == 4
    assert cost(encode(Image.new("RGB", (2000, 1600)), "JPEG"), 200)[1] == (250, 200)  # counted at 1/8


def test_transparent_palette_is_composited_on_white_in_the_palette():
    im = Image.new("P", (4, 2), 0)
    im.putpalette([255, 0, 0, 0, 0, 255])
    im.putpixel((0, 0), 1)
    out = decode_image(encode(im, "PNG", transparency=0), **LIMITS).image  # index 0 (red) is transparent
    assert out.getpixel((1, 1)) == (255, 255, 255) and out.getpixel((0, 0)) == (0, 0, 255)
    alpha = encode(im, "PNG", transparency=bytes([128, 255]))  # half-transparent red
    assert decode_image(alpha, **LIMITS).image.getpixel((1, 1)) == (255, 127, 127)


def test_only_allowed_formats_are_parsed():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "PCX")
    err = rejected(buf.getvalue())
    assert type(err) is ImageUnsupported and "unsupported image format" in err.reason


def test_decodes_wait_for_room_in_their_budget_and_give_up_with_503():
    import threading

    from dogsearch.core.errors import Unavailable
    from dogsearch.core.images import DecodeBudget

    budget = DecodeBudget(100, wait_s=0.05)
    with budget.reserve(60):
        with pytest.raises(Unavailable):
            with budget.reserve(60):
                pass
        with budget.reserve(40):  # small ones fit beside
            pass
    budget.wait_s, done = 5.0, threading.Event()

    def take() -> None:
        with budget.reserve(60):
            done.set()

    with budget.reserve(60):
        waiter = threading.Thread(target=take)
        waiter.start()
        assert not done.wait(0.05)  # waits while the first holds the room
    waiter.join(5)
    assert done.is_set()


PHONE = Path(__file__).resolve().parents[1] / "fixtures" / "phone"
UPRIGHT_BEAGLE = Path(__file__).resolve().parents[1] / "fixtures" / "dogs" / "n02088364" / "ILSVRC2012_val_00005922.jpg"


def _sideways_avif() -> bytes:
    """The beagle as Pillow writes an AVIF: the pixels a quarter turn off, EXIF orientation 6 to show them upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = Image.open(UPRIGHT_BEAGLE).convert("RGB").transpose(Image.Transpose.ROTATE_90)
    return encode(sideways, "AVIF", quality=90, exif=exif)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_phone_photo_decodes_upright(fmt):
    """A phone's HEIC shows its pixels upright through the file's rotation (irot), an AVIF through EXIF: either way
    the decoded photo is the upright one, and so are the sizes the header reports."""
    from dogsearch.core.images import probe_image

    data = (PHONE / "beagle.heic").read_bytes() if fmt == "HEIF" else _sideways_avif()
    upright = np.asarray(Image.open(UPRIGHT_BEAGLE).convert("RGB"), dtype=np.int16)
    out = decode_image(data, **LIMITS)
    info = probe_image(data, **LIMITS)
    assert (out.format, out.width, out.height, out.image.mode) == (fmt, 213, 160, "RGB")
    assert (info.format, info.width, info.height) == (fmt, 213, 160)
    assert np.abs(np.asarray(out.image, dtype=np.int16) - upright).mean() < 3  # upright, not turned (~60 off)


def test_a_heif_shows_its_primary_image_not_its_first():
    out = decode_image((PHONE / "two-images.heic").read_bytes(), **LIMITS)  # blue 32x32, then red 48x32 (primary)
    assert (out.width, out.height) == (48, 32) and out.image.getpixel((4, 4))[0] > 200


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF", "PNG", "GIF", "TIFF"])
def test_a_file_cut_short_within_its_header_is_damaged_not_foreign(fmt):
    """An upload cut short says so (422), not "not an image" (415), even where the format cannot be opened at all
    without its whole header (HEIF and AVIF are parsed whole)."""
    data = (PHONE / "beagle.heic").read_bytes() if fmt == "HEIF" else solid((1, 2, 3), (64, 48), fmt)
    for cut in (12, 30, len(data) // 2):
        err = rejected(data[:cut])
        assert type(err) is ImageRejected and "truncated or corrupt" in err.reason, (fmt, cut, err.reason)


def test_a_heif_bomb_is_refused_from_its_header_by_decode_memory():
    bomb = (PHONE / "bomb.heic").read_bytes()  # 40 MP of one colour in 25 KB: ~320 MB to decode
    with pytest.raises(ImageTooLarge) as info:
        decode_image(bomb, max_bytes=100_000, max_pixels=40_000_000, max_decode_bytes=MAX_DECODE_BYTES)
    assert "too large to decode" in info.value.reason and "HEIF" in info.value.reason
    assert "at most about 25.2 megapixels" in info.value.reason  # 8 bytes a pixel within 192 MiB


def test_an_iphones_24_megapixel_heic_decodes_under_the_default_limits():
    """iPhones from the 15 on store 24 MP HEICs (5712x4284): 187 MiB to decode, which the default takes; the
    limit before (128 MiB) refused every one of them."""
    data = (PHONE / "iphone-24mp.heic").read_bytes()
    out = ImageLimits(20 << 20, 40_000_000).decode(data, min_side=768)
    assert (out.format, out.width, out.height) == ("HEIF", 5712, 4284)
    assert 768 <= min(out.image.size) < 4284  # shrunk after the decode
    with pytest.raises(ImageTooLarge, match="needs about 186 MiB, limit 128 MiB"):
        decode_image(data, max_bytes=20 << 20, max_pixels=40_000_000, max_decode_bytes=128 << 20)
