from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch.gallery.photos import PhotoStore, media_type

DOG = "0123abcd-0000-0000-0000-000000000000"


def test_save_makes_the_fan_out_folders_and_leaves_no_temporary_file(tmp_path):
    store = PhotoStore(tmp_path)
    store.save(DOG, "JPEG", b"original")
    assert store.original(DOG, "JPEG") == tmp_path / "01" / "23" / f"{DOG}.jpg"
    assert store.original(DOG, "JPEG").read_bytes() == b"original"
    assert [p.name for p in (tmp_path / "01" / "23").iterdir()] == [f"{DOG}.jpg"]


def test_a_thumbnail_is_made_once_from_the_original_when_first_asked_for(tmp_path):
    store = PhotoStore(tmp_path, thumbnail_px=64)
    photo = io.BytesIO()
    Image.new("RGB", (400, 200), (200, 30, 30)).save(photo, "PNG")
    store.save(DOG, "PNG", photo.getvalue())
    assert store.thumbnail("ffff0000-0000-0000-0000-000000000000", "PNG") is None  # no original
    path = store.thumbnail(DOG, "PNG")
    thumb = Image.open(path)
    assert thumb.format == "JPEG" and thumb.size == (64, 32)
    made = path.stat().st_mtime_ns
    assert store.thumbnail(DOG, "PNG") == path and path.stat().st_mtime_ns == made  # kept, not made again
    store.delete(DOG, "PNG")
    assert list((tmp_path / "01" / "23").iterdir()) == []


def test_a_heic_is_served_as_a_jpeg_of_its_upright_pixels_without_its_metadata(tmp_path):
    """Most browsers show no HEIC, and a phone's carries where it was taken: its public copy is a JPEG of the decoded
    photo (turned upright by the file's own rotation), with nothing of the original's EXIF or XMP."""
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    heic = (fixtures / "phone" / "beagle.heic").read_bytes()
    assert b"Secretville" in heic and b"SERIAL-1234567" in heic  # the phone's XMP and camera serial
    store = PhotoStore(tmp_path)
    store.save(DOG, "HEIF", heic)
    assert store.original(DOG, "HEIF").name == f"{DOG}.heic"
    path = store.public(DOG, "HEIF")
    assert path.name == f"{DOG}.public.jpg" and media_type(path) == "image/jpeg"
    public = path.read_bytes()
    assert b"Secretville" not in public and b"SERIAL-1234567" not in public
    with Image.open(io.BytesIO(public)) as served:
        assert served.format == "JPEG" and not served.getexif() and "xmp" not in served.info
        upright = np.asarray(Image.open(fixtures / "dogs/n02088364/ILSVRC2012_val_00005922.jpg").convert("RGB"))
        assert np.abs(np.asarray(served, dtype=np.int16) - upright).mean() < 3
    assert Image.open(store.thumbnail(DOG, "HEIF")).format == "JPEG"
    store.delete(DOG, "HEIF")
    assert list((tmp_path / "01" / "23").iterdir()) == []


def test_writers_racing_on_one_photo_leave_one_whole_file(tmp_path):
    store = PhotoStore(tmp_path)
    versions = [bytes([n]) * 200_000 for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda data: store.save(DOG, "PNG", data), versions * 4))
    assert store.original(DOG, "PNG").read_bytes() in versions
    assert len(list(store.original(DOG, "PNG").parent.iterdir())) == 1


def test_a_failed_write_removes_its_temporary_file(tmp_path):
    store = PhotoStore(tmp_path)
    store.original(DOG, "JPEG").mkdir(parents=True)  # a folder in the way: the rename fails
    with pytest.raises(OSError):
        store.save(DOG, "JPEG", b"original")
    assert [p.name for p in store.original(DOG, "JPEG").parent.iterdir()] == [f"{DOG}.jpg"]
