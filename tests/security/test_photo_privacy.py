"""Served photos tell nobody where they were taken: an upload's GPS position (and the owner's name, the camera's
serial) is not in what GET /v1/dogs/{id}/image answers, against a real `dogsearch serve`."""
from __future__ import annotations

import io

import httpx
import numpy as np
from PIL import Image

GPS_IFD, EXIF_IFD, ORIENTATION, ARTIST, SERIAL = 0x8825, 0x8769, 0x0112, 0x013B, 0xA431


def photo_taken_at_home() -> bytes:
    rng = np.random.default_rng(7)
    im = Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[ARTIST] = "Jane Owner"
    exif.get_ifd(EXIF_IFD)[SERIAL] = "SN-123456"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def test_a_served_photo_has_no_gps_position_and_the_same_pixels(start_server):
    server = start_server()
    data = photo_taken_at_home()
    added = httpx.post(f"{server.url}/v1/dogs", files={"image": ("home.jpg", data)}, timeout=120)
    assert added.status_code == 201, added.text
    served = httpx.get(f"{server.url}{added.json()['image_url']}", timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert b"Jane Owner" not in served.content and b"SN-123456" not in served.content
    with Image.open(io.BytesIO(served.content)) as public, Image.open(io.BytesIO(data)) as original:
        exif = public.getexif()
        assert original.getexif().get_ifd(GPS_IFD)  # the upload had a position
        assert not exif.get_ifd(GPS_IFD) and not exif.get_ifd(EXIF_IFD) and ARTIST not in exif
        assert exif[ORIENTATION] == 6  # shown the right way up still
        assert np.array_equal(np.asarray(public), np.asarray(original))  # not re-encoded
    again = httpx.get(f"{server.url}{added.json()['image_url']}", timeout=30)  # made once, then served
    assert again.content == served.content
