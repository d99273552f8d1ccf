"""What no job input may do to a service: read a file beyond the photo limit or outside the allowed roots, hang the
walk on a link loop, unpack a zip past the entry count or the free-disk floor, copy unbounded fields into every
point, stay running forever, leave its unpacked upload behind, or show a server path or an exception in its errors."""
from __future__ import annotations

import asyncio
import json
import os
import struct
import zipfile
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dogsearch.core.errors import Unavailable
from dogsearch.jobs import sources
from dogsearch.jobs.sources import (
    ArchiveTooLarge,
    NoDiskSpace,
    PhotoUnreadable,
    declared_entries,
    list_items,
    open_photo,
    unpack_zip,
)
from dogsearch.jobs.store import SqliteJobStore, new_job
from dogsearch.jobs.work import delivery_key, poisoned, reason_of
from tests.fakes import ColorGridModel, serving
from tests.jobs.helpers import all_dogs, wait_job
from tests.jobs.servers import SlowModel
from tests.jobs.test_embedded import app_for, make_zip


@pytest.fixture
async def client(tmp_path):
    app = app_for(tmp_path, ColorGridModel(), max_fields_bytes=1024, max_cell_bytes=256, max_manifest_columns=8)
    async with serving(app) as c:
        yield c


def assert_no_server_path(reasons: list[str]) -> None:
    for reason in reasons:
        assert "/" not in reason and "Error" not in reason and "(" not in reason, reason


# --- reading a job's files -----------------------------------------------------------------------------------------

def test_a_file_is_refused_before_it_is_read(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8 secret")
    (root / "out.jpg").symlink_to(tmp_path / "secret.jpg")
    (root / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(root / "fifo.jpg")  # opening it for reading would wait for a writer forever
    with open(root / "huge.jpg", "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: a 3 GB ".jpg" that costs no disk
    (root / "ok.jpg").write_bytes(b"fine")
    roots = [str(root)]
    reasons = {}
    for name in ("out.jpg", "zero.jpg", "fifo.jpg", "huge.jpg", "missing.jpg"):
        with pytest.raises(PhotoUnreadable) as caught:
            open_photo(str(root / name), roots, max_bytes=1024)
        reasons[name] = caught.value.reason
    assert reasons == {"out.jpg": "outside the allowed folders", "zero.jpg": "outside the allowed folders",
                       "fifo.jpg": "not a regular file", "huge.jpg": f"file too large: {3 * 1024**3} bytes, limit 1024",
                       "missing.jpg": "the photo could not be read: no such file or directory"}
    assert open_photo(str(root / "ok.jpg"), roots, max_bytes=1024) == b"fine"
    assert open_photo(str(root / "ok.jpg"), roots, max_bytes=4) == b"fine"
    with pytest.raises(PhotoUnreadable, match="file too large"):
        open_photo(str(root / "ok.jpg"), roots, max_bytes=3)


def test_the_walk_follows_links_only_inside_the_roots_and_ends_loops(tmp_path):
    root, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    (root / "beagle").mkdir(parents=True)
    elsewhere.mkdir()
    (root / "beagle" / "a.jpg").write_bytes(b"a")
    (elsewhere / "b.jpg").write_bytes(b"b")
    (root / "beagle" / "loop").symlink_to(root)  # a loop: the walk must end
    (root / "self.jpg").symlink_to(root / "self.jpg")  # a link to itself
    (root / "also").symlink_to(root / "beagle")  # inside the roots: its files are listed once
    (root / "out").symlink_to(elsewhere)  # outside: listed so that it fails, not walked
    items = list_items(root, None, None, {}, [root])
    assert sorted(i.file for i in items) == ["beagle/a.jpg", "out", "self.jpg"]
    out = next(i for i in items if i.file == "out")
    with pytest.raises(PhotoUnreadable, match="^outside the allowed folders$"):
        open_photo(out.path, [str(root)], max_bytes=1024)


async def test_a_folder_job_fails_the_files_it_must_not_read_and_says_why_without_paths(client, photos, tmp_path):
    (tmp_path / "secret.jpg").write_bytes(next(photos.rglob("*.jpg")).read_bytes())
    (photos / "out.jpg").symlink_to(tmp_path / "secret.jpg")
    (photos / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(photos / "fifo.jpg")
    with open(photos / "huge.jpg", "wb") as f:
        f.truncate(25 * 1024**2)  # over the gateway's 20 MB photo limit
    r = await client.post("/v1/jobs/index", json={"path": str(photos)})
    job = await wait_job(client, r.json()["id"])
    assert (job["state"], job["total"], job["indexed"], job["failed"]) == ("done", 44, 40, 4), job
    reasons = {e["file"]: e["reason"] for e in job["errors"]}
    assert reasons == {"out.jpg": "outside the allowed folders", "zero.jpg": "outside the allowed folders",
                       "fifo.jpg": "not a regular file",
                       "huge.jpg": f"file too large: {25 * 1024**2} bytes, limit {20 * 1024**2}"}
    assert_no_server_path(list(reasons.values()))


# --- zips ----------------------------------------------------------------------------------------------------------

def test_the_entry_count_is_read_from_the_end_record_before_the_directory_is_parsed(tmp_path, monkeypatch):
    archive = tmp_path / "many.zip"
    archive.write_bytes(make_zip({f"{n}.jpg": b"" for n in range(300)}))
    assert declared_entries(archive) == 300

    def never(*_, **__):
        raise AssertionError("zipfile parsed the central directory")

    monkeypatch.setattr(sources.zipfile, "ZipFile", never)
    with pytest.raises(ArchiveTooLarge, match="too many entries in the archive: 300, limit 100"):
        unpack_zip(archive, tmp_path / "out", max_files=100, max_bytes=10**6, max_ratio=10)
    assert not (tmp_path / "out").exists()


def test_a_zip64_end_record_is_read_too(tmp_path):
    archive = tmp_path / "z64.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(3):
            with zf.open(f"{n}.jpg", "w", force_zip64=True) as f:
                f.write(b"x")
    data = bytearray(archive.read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    if data[eocd - 20:eocd - 16] != b"PK\x06\x07":  # zipfile writes the Zip64 records only when it must: add them
        at = eocd
        record = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, 3, 3, 0, 0)
        locator = b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1)
        data[at:at] = record + locator
        eocd = data.rfind(b"PK\x05\x06")
    # The classic record says 0xFFFF ("see Zip64"); the Zip64 record says 3 000 000.
    data[eocd + 8:eocd + 12] = struct.pack("<HH", 0xFFFF, 0xFFFF)
    record_at = struct.unpack("<Q", data[eocd - 12:eocd - 4])[0]
    data[record_at + 24:record_at + 40] = struct.pack("<QQ", 3_000_000, 3_000_000)
    archive.write_bytes(bytes(data))
    assert declared_entries(archive) == 3_000_000
    with pytest.raises(ArchiveTooLarge, match="too many entries"):
        unpack_zip(archive, tmp_path / "out", max_files=200_000, max_bytes=10**6, max_ratio=10)


def test_a_zip_is_refused_when_it_would_take_the_disk_below_the_floor(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"a.jpg": b"x" * 1000}))
    with pytest.raises(NoDiskSpace, match="not enough free disk space"):
        unpack_zip(archive, tmp_path / "out", max_files=10, max_bytes=10**6, max_ratio=10, min_free_bytes=2**62)
    unpack_zip(archive, tmp_path / "ok", max_files=10, max_bytes=10**6, max_ratio=10, min_free_bytes=0)
    assert (tmp_path / "ok" / "a.jpg").stat().st_size == 1000


@pytest.mark.parametrize("options, entries, reason", [
    ({"max_archive_files": 50}, 60, "too many entries in the archive: 60, limit 50"),
    ({"min_free_bytes": 2**62}, 1, "not enough free disk space to receive an archive: try again later"),
])
async def test_zip_uploads_over_the_entry_count_or_the_disk_floor_are_413(tmp_path, options, entries, reason):
    app = app_for(tmp_path, ColorGridModel(), **options)
    async with serving(app) as c:
        archive = make_zip({f"{n}.jpg": b"" for n in range(entries)})
        r = await c.post("/v1/jobs/index/upload", files={"archive": ("x.zip", archive)})
        assert (r.status_code, r.json()["detail"]) == (413, reason)
        assert not any((tmp_path / "data" / "jobs" / "uploads").iterdir())


# --- fields --------------------------------------------------------------------------------------------------------

async def test_payloads_and_manifest_cells_are_bounded(client, photos):
    r = await client.post("/v1/jobs/index", json={"path": str(photos), "payload": {"note": "x" * 2000}})
    assert r.status_code == 413 and "fields too large" in r.json()["detail"], r.text
    r = await client.post("/v1/jobs/index/upload", files={"archive": ("x.zip", make_zip({"a.jpg": b"x"}))},
                          data={"payload": json.dumps({"note": "x" * 2000})})
    assert r.status_code == 413 and "fields too large" in r.json()["detail"], r.text
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    (photos / "cell.csv").write_text(f"path,note\n{files[0]},{'x' * 300}\n")
    (photos / "wide.csv").write_text("path," + ",".join(f"c{n}" for n in range(10)) + f"\n{files[0]}\n")
    (photos / "cell.jsonl").write_text(json.dumps({"path": files[0], "note": "x" * 300}) + "\n")
    (photos / "row.jsonl").write_text(json.dumps({"path": files[0], **{f"c{n}": "x" * 200 for n in range(7)}}) + "\n")
    (photos / "line.jsonl").write_text(json.dumps({"path": files[0], "note": "x" * 5000}) + "\n")
    expected = {"cell.csv": "limit 256", "wide.csv": "11 columns, limit 8", "cell.jsonl": "limit 256",
                "row.jsonl": "fields too large", "line.jsonl": "characters, limit 2048"}
    for manifest, reason in expected.items():
        r = await client.post("/v1/jobs/index", json={"path": str(photos / manifest)})
        assert r.status_code == 413 and reason in r.json()["detail"], (manifest, r.text)
    assert (await client.get("/v1/jobs")).json()["items"] == []


# --- jobs that never end, batches that kill their worker, leftovers --------------------------------------------------

async def test_a_job_that_stops_making_progress_fails(tmp_path, photos):
    app = app_for(tmp_path, SlowModel(delay_s=3), stall_timeout_s=1, batch_size=40, local_concurrency=1)
    async with serving(app) as c:
        job_id = (await c.post("/v1/jobs/index", json={"path": str(photos)})).json()["id"]
        await asyncio.sleep(1.5)
        job = (await c.get(f"/v1/jobs/{job_id}")).json()
        assert (job["state"], job["error"]) == ("failed", "stalled: no file finished for 1 s"), job
        assert (await c.get("/v1/jobs")).json()["items"][0]["state"] == "failed"


def test_a_batch_that_kills_its_worker_fails_after_max_deliveries(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite3")
    store.create(new_job("j1", source="path", path="x", root="/x", labels=None, payload={}, roots=["/x"]))
    store.start("j1", 3)
    batch = [["a.jpg", "/x/a.jpg", {}], ["b.jpg", "/x/b.jpg", {}]]
    key = delivery_key(batch)
    assert [poisoned(store, "j1", batch, key, 3) for _ in range(3)] == [False] * 3  # the first three run
    assert delivery_key(batch, attempt=1) != key  # a retry (the services were down) is not a redelivery
    assert poisoned(store, "j1", batch, key, 3)
    job = store.get("j1")
    assert job["failed"] == 2 and job["errors"][0]["reason"] == "this batch stopped the worker 3 times"
    store.close()


async def test_leftover_uploads_are_removed_at_start_and_on_cancel(tmp_path, photos):
    uploads = tmp_path / "data" / "jobs" / "uploads"
    (uploads / "6f0c2e64-0000-4000-8000-000000000000" / "pack").mkdir(parents=True)  # a crash mid-job
    (uploads / ".upload-abc.zip").write_bytes(b"PK")  # a crash mid-upload
    (uploads / "young").mkdir()  # maybe another gateway's upload in progress: kept until it is old
    old = (datetime.now(UTC) - timedelta(hours=2)).timestamp()
    for name in ("6f0c2e64-0000-4000-8000-000000000000", ".upload-abc.zip"):
        os.utime(uploads / name, (old, old))
    app = app_for(tmp_path, SlowModel(delay_s=0.5))
    async with app.router.lifespan_context(app):
        assert sorted(p.name for p in uploads.iterdir()) == ["young"]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
            entries = {f"pack/{p.name}": p.read_bytes() for p in sorted(photos.rglob("*.jpg"))[:20]}
            r = await c.post("/v1/jobs/index/upload", files={"archive": ("p.zip", make_zip(entries))})
            job_id = r.json()["id"]
            assert (uploads / job_id).is_dir()
            assert (await c.delete(f"/v1/jobs/{job_id}")).json()["state"] == "cancelled"
            assert not (uploads / job_id).exists()
            await asyncio.sleep(0.6)
            assert len(await all_dogs(c)) <= 16


def test_job_errors_carry_no_path_and_no_exception():
    assert reason_of(ValueError("/srv/data/x.jpg is odd")) == "an internal error, see the worker's log"
    assert reason_of(FileNotFoundError(2, "No such file or directory", "/imports/x.jpg")) == "no such file or directory"
    passed_through = Unavailable("cannot write /data/vectors/dogs/segment.bin: read-only file system")
    assert reason_of(passed_through) == "cannot write segment.bin: read-only file system"
    assert_no_server_path([reason_of(KeyError("/etc/passwd"))])


def test_a_folder_swapped_for_a_link_between_the_check_and_the_open_is_caught(tmp_path, monkeypatch):
    # The path is resolved and checked, then opened: a folder on the way replaced by a link in between (O_NOFOLLOW
    # guards only the last part) is found by what the open file descriptor points to.
    from dogsearch.jobs import sources
    from dogsearch.jobs.sources import PhotoUnreadable, open_photo

    root, outside = tmp_path / "imports", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "sub" / "a.jpg").write_bytes(b"inside")
    (outside / "a.jpg").write_bytes(b"secret")
    real_open = os.open

    def swapping_open(path, flags, *args):
        (root / "sub").rename(root / "was-sub")
        (root / "sub").symlink_to(outside)
        return real_open(path, flags, *args)

    monkeypatch.setattr(sources.os, "open", swapping_open)
    with pytest.raises(PhotoUnreadable, match="outside the allowed folders"):
        open_photo(str(root / "sub" / "a.jpg"), [str(root)], 1024)
