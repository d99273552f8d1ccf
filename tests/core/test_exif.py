from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dogsearch.core.exif import Taken, strip_private, taken
from dogsearch.core.images import read_exif

GPS_IFD, ORIENTATION, ARTIST, SERIAL = 0x8825, 0x0112, 0x013B, 0xA431


def private_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[ARTIST] = "Jane Owner"
    exif.get_ifd(0x8769)[SERIAL] = "SN-123456"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    return exif


def noise(size=(64, 48), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def save(im: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kwargs)
    return buf.getvalue()


def pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGBA"))


@pytest.mark.parametrize(("fmt", "kwargs"), [
    ("JPEG", {"quality": 90, "icc_profile": b"\x00" * 128, "comment": b"taken at home"}),
    ("PNG", {}),
    ("WEBP", {"lossless": True, "xmp": b"<x:xmpmeta>owner</x:xmpmeta>"}),
    ("TIFF", {}),
], ids=["jpeg", "png", "webp", "tiff"])
def test_private_metadata_goes_and_pixels_and_orientation_stay(fmt, kwargs):
    im = noise()
    data = save(im, fmt, exif=private_exif(), **kwargs)
    with Image.open(io.BytesIO(data)) as before:
        assert before.getexif()[ARTIST] == "Jane Owner"  # the test photo does carry metadata
        assert fmt == "TIFF" or before.getexif().get_ifd(GPS_IFD)  # (Pillow writes no GPS IFD into a TIFF)
        oriented = np.asarray(ImageOps.exif_transpose(before))
    public = strip_private(data, fmt)
    assert b"Jane Owner" not in public and b"SN-123456" not in public and b"owner" not in public
    with Image.open(io.BytesIO(public)) as after:
        exif = after.getexif()
        assert not exif.get_ifd(GPS_IFD) and ARTIST not in exif
        if fmt == "TIFF":  # re-encoded with the orientation applied
            assert ORIENTATION not in exif and np.array_equal(np.asarray(after), oriented)
            return
        assert exif.get(ORIENTATION) == 6
        assert after.info.get("icc_profile") == kwargs.get("icc_profile")
    assert np.array_equal(pixels(public), pixels(data))


def test_an_mpo_is_served_as_its_first_frame_without_trailing_data():
    frames = [noise(), noise().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buf = io.BytesIO()
    frames[0].save(buf, "MPO", save_all=True, append_images=frames[1:], exif=private_exif(1))
    data = buf.getvalue() + b"trailing video with a position"
    public = strip_private(data, "MPO")
    assert b"trailing" not in public and len(public) < len(data) // 2 + 1000
    with Image.open(io.BytesIO(public)) as after:
        assert after.format == "JPEG" and not after.getexif()
    assert np.array_equal(pixels(public), pixels(data))


def test_a_photo_without_metadata_is_left_as_it_is():
    for fmt in ("PNG", "WEBP"):
        data = save(noise(), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        assert strip_private(data, fmt) == data


def test_a_gif_loses_its_comment_and_keeps_its_frames():
    frames = [noise(mode="P"), noise().transpose(Image.Transpose.FLIP_TOP_BOTTOM).convert("P")]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], loop=0, duration=100,
                   comment=b"taken at 52.52N 13.40E")
    data = buf.getvalue()
    public = strip_private(data, "GIF")
    assert b"52.52N" not in public and b"NETSCAPE2.0" in public
    with Image.open(io.BytesIO(public)) as after, Image.open(io.BytesIO(data)) as before:
        assert after.n_frames == before.n_frames == 2
        for index in range(2):
            after.seek(index)
            before.seek(index)
            assert np.array_equal(np.asarray(after.convert("RGB")), np.asarray(before.convert("RGB")))


def test_gifs_with_and_without_colour_tables_are_walked():
    plain = save(Image.new("L", (8, 8), 90), "GIF", comment=b"secret")  # greyscale: no global table, say
    with_local = io.BytesIO()
    Image.new("P", (8, 8), 1).save(with_local, "GIF", save_all=True, comment=b"secret",
                                   append_images=[noise((8, 8)).convert("P", palette=Image.Palette.ADAPTIVE)])
    for data in (plain, with_local.getvalue()):
        public = strip_private(data, "GIF")
        assert b"secret" not in public and public.endswith(b"\x3b")
        assert np.array_equal(pixels(public), pixels(data))


# -- when and where a photo was taken ---------------------------------------------------------------------------------

EXIF_IFD, DATE_TIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 0x8769, 0x9003, 0x9011
PHONE = Path(__file__).resolve().parents[1] / "fixtures" / "phone"
LIMITS = {"max_bytes": 20 << 20, "max_pixels": 40_000_000}


def camera_exif(when: str | None = "2026:11:30 18:05:09", offset: str | None = "+01:00",
                gps: dict | None = None) -> Image.Exif:
    exif = Image.Exif()
    if when is not None:
        exif.get_ifd(EXIF_IFD)[DATE_TIME_ORIGINAL] = when
    if offset is not None:
        exif.get_ifd(EXIF_IFD)[OFFSET_TIME_ORIGINAL] = offset
    if gps is not None:
        exif.get_ifd(GPS_IFD).update(gps)
    return exif


def taken_from(exif: Image.Exif, fmt: str = "JPEG") -> Taken:
    """Through a real file: written by Pillow, read back as the services read it (its header only)."""
    return taken(read_exif(save(noise(), fmt, exif=exif.tobytes()), **LIMITS))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
def test_when_and_where_a_photo_was_taken(fmt):
    santiago = {1: "S", 2: (33.0, 26.0, 24.0), 3: "W", 4: (70.0, 39.0, 0.0)}
    got = taken_from(camera_exif(gps=santiago), fmt)
    assert got.at == datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC) and got.local is None  # +01:00 -> UTC
    assert got.where == pytest.approx((-33.44, -70.65))  # south and west are negative


def test_an_iphones_heic_says_when_and_where():
    got = taken(read_exif((PHONE / "iphone-24mp.heic").read_bytes(), **LIMITS))
    assert got.at == datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC)
    assert got.where == (52.52, 13.405)


def test_the_gps_time_is_utc_and_a_time_without_its_zone_is_not_guessed():
    gps = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0), 7: (16.0, 5.0, 9.5), 29: "2026:11:30"}
    got = taken_from(camera_exif(offset=None, gps=gps))
    assert got.at == datetime(2026, 11, 30, 16, 5, 9, 500000, tzinfo=UTC)  # the receiver's, not the camera's 18:05
    got = taken_from(camera_exif(offset=None))
    assert got.at is None and got.local == datetime(2026, 11, 30, 18, 5, 9) and got.where is None
    assert taken_from(Image.Exif()) == Taken()


@pytest.mark.parametrize(("exif", "what"), [
    (camera_exif(when="0000:00:00 00:00:00"), "a clock never set"),
    (camera_exif(when="    :  :     :  :  "), "a blank time"),
    (camera_exif(offset="+25:00"), "an offset beyond any zone"),
    (camera_exif(offset="CET"), "an offset that is not one"),
    (camera_exif(offset="+05:75"), "minutes past 59"),
    # past the last instant there is (an OverflowError failed the whole batch of a job that read it)
    (camera_exif(when="9999:12:31 23:59:59", offset="-12:00"), "after the end of time"),
    (camera_exif(offset=None, gps={7: (24.0, 0.0, 0.0), 29: "9999:12:31"}), "a GPS time after it too"),
])
def test_a_time_that_is_not_one_is_left_out(exif, what):
    got = taken_from(exif)
    assert got.at is None, what


@pytest.mark.parametrize(("gps", "what"), [
    ({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0), 9: "V"}, "the receiver says it had no fix"),
    ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "0, 0: written without a fix"),
    ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (13.0, 0.0, 0.0)}, "a latitude beyond the pole"),
    ({2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)}, "no hemisphere"),
    ({1: "X", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)}, "a hemisphere that is none"),
    ({1: "N", 2: (52.0, 31.0), 3: "E", 4: (13.0, 24.0, 18.0)}, "two numbers for three"),
    ({1: "N", 2: 52.5, 3: "E", 4: (13.0, 24.0, 18.0)}, "one number for three"),
])
def test_a_position_that_is_not_one_is_left_out(gps, what):
    assert taken_from(camera_exif(gps=gps)).where is None, what


def test_reading_a_pngs_exif_decodes_none_of_its_pixels(monkeypatch):
    """Pillow's PNG getexif decodes the image to look for EXIF after its pixels when its header has none: a 40 MP
    bomb would cost 190 MiB outside the decode budget. Only what the header holds is read."""
    from PIL import PngImagePlugin

    def no_pixels(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_pixels)
    assert taken(read_exif(save(noise(), "PNG"), **LIMITS)) == Taken()
    with_exif = save(noise(), "PNG", exif=camera_exif().tobytes())
    assert taken(read_exif(with_exif, **LIMITS)).at == datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC)
