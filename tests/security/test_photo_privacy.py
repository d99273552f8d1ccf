"""Served photos tell nobody where they were taken: an upload's GPS position (and the owner's name, the camera's
serial) is not in what GET /v1/dogs/{id}/image answers, against a real `dogsearch serve`."""
from __future__ import annotations

import io
from pathlib import Path

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


def add_and_serve(url: str, name: str, data: bytes) -> tuple[str, httpx.Response]:
    """Adds the photo as a dog; its image URL and what that URL serves (a JPEG)."""
    added = httpx.post(f"{url}/v1/dogs", files={"image": (name, data)}, timeout=120)
    assert added.status_code == 201, added.text
    served = httpx.get(f"{url}{added.json()['image_url']}", timeout=30)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    return added.json()["image_url"], served


def test_a_served_photo_has_no_gps_position_and_the_same_pixels(start_server):
    server = start_server()
    data = photo_taken_at_home()
    image_url, served = add_and_serve(server.url, "home.jpg", data)
    assert b"Jane Owner" not in served.content and b"SN-123456" not in served.content
    with Image.open(io.BytesIO(served.content)) as public, Image.open(io.BytesIO(data)) as original:
        exif = public.getexif()
        assert original.getexif().get_ifd(GPS_IFD)  # the upload had a position
        assert not exif.get_ifd(GPS_IFD) and not exif.get_ifd(EXIF_IFD) and ARTIST not in exif
        assert exif[ORIENTATION] == 6  # shown the right way up still
        assert np.array_equal(np.asarray(public), np.asarray(original))  # not re-encoded
    again = httpx.get(f"{server.url}{image_url}", timeout=30)  # made once, then served
    assert again.content == served.content


def test_a_phones_heic_is_served_as_a_jpeg_without_where_it_was_taken(start_server):
    """A phone's HEIC (GPS position, camera serial, an XMP packet naming the town) is taken, and served as a JPEG
    of its upright pixels that browsers show and that carries none of it; its thumbnail too."""
    heic = (Path(__file__).resolve().parents[1] / "fixtures" / "phone" / "beagle.heic").read_bytes()
    server = start_server()
    image_url, served = add_and_serve(server.url, "IMG_0001.HEIC", heic)
    assert b"Secretville" not in served.content and b"SERIAL-1234567" not in served.content
    with Image.open(io.BytesIO(served.content)) as public:
        assert public.size == (213, 160)  # upright: the file's pixels are stored a quarter turn off
        assert not public.getexif().get_ifd(GPS_IFD) and "xmp" not in public.info
    thumbnail = httpx.get(f"{server.url}{image_url}", params={"size": "thumbnail"}, timeout=30)
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"


def test_where_a_photo_was_taken_becomes_its_report_only_when_the_sender_asks(start_server):
    """A report is shown to every reader: the photo's GPS position (maybe its sender's home) is never taken into it
    unasked, and when asked for, the photo itself still goes out without it."""
    server = start_server()
    data = photo_taken_at_home()
    plain = httpx.post(f"{server.url}/v1/dogs", files={"image": ("home.jpg", data)}, timeout=120)
    assert plain.status_code == 201, plain.text
    assert not {"location", "seen_at"} & set(plain.json()["payload"])
    assert httpx.delete(f"{server.url}/v1/dogs/{plain.json()['id']}", timeout=30).status_code == 204
    asked = httpx.post(f"{server.url}/v1/dogs", files={"image": ("home.jpg", data)}, data={"location": "photo"},
                       timeout=120)
    assert asked.status_code == 201, asked.text
    assert asked.json()["payload"]["location"] == {"lat": 52.52, "lon": 13.41}
    served = httpx.get(f"{server.url}{asked.json()['image_url']}", timeout=30)
    with Image.open(io.BytesIO(served.content)) as public:
        assert not public.getexif().get_ifd(GPS_IFD)
