from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from dogsearch.gallery.photos import PhotoStore

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
