from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from services.gateway.photos import PhotoStore

DOG = "0123abcd-0000-0000-0000-000000000000"


def test_save_makes_the_fan_out_folders_and_leaves_no_temporary_file(tmp_path):
    store = PhotoStore(tmp_path)
    store.save(DOG, "JPEG", b"original", b"thumb")
    assert store.original(DOG, "JPEG") == tmp_path / "01" / "23" / f"{DOG}.jpg"
    assert store.original(DOG, "JPEG").read_bytes() == b"original"
    assert store.thumbnail(DOG).read_bytes() == b"thumb"
    assert sorted(p.name for p in (tmp_path / "01" / "23").iterdir()) == [f"{DOG}.jpg", f"{DOG}.thumb.jpg"]


def test_writers_racing_on_one_photo_leave_one_whole_file(tmp_path):
    store = PhotoStore(tmp_path)
    versions = [bytes([n]) * 200_000 for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda data: store.save(DOG, "PNG", data, data[:10]), versions * 4))
    assert store.original(DOG, "PNG").read_bytes() in versions
    assert len(list(store.original(DOG, "PNG").parent.iterdir())) == 2


def test_a_failed_write_removes_its_temporary_file(tmp_path):
    store = PhotoStore(tmp_path)
    store.thumbnail(DOG).mkdir(parents=True)  # a folder in the way: the rename fails
    with pytest.raises(OSError):
        store.save(DOG, "JPEG", b"original", b"thumb")
    assert sorted(p.name for p in store.thumbnail(DOG).parent.iterdir()) == [f"{DOG}.jpg", f"{DOG}.thumb.jpg"]
