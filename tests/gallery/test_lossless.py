"""Nothing lost: a dog is its entry and its photo file together, whatever fails and whatever runs at the same time.
An ambiguous upsert failure is looked at before any file is removed; a failed call removes only the files it made;
two uploads of one photo make one dog; a delete racing an upload leaves the whole dog or nothing; a full disk is a
507 that stores nothing; photo files are fsync'd (file and folder) before their vector is stored."""
from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import httpx
import pytest

from dogsearch.core.errors import InvalidInput, TimedOut
from dogsearch.core.images import ImageLimits
from dogsearch.gallery.ingest import Upload
from dogsearch.gallery.records import photo_id, sha256_hex
from dogsearch.services.errors import UpstreamFailure
from tests.images import solid

RED, BLUE = solid((200, 30, 30)), solid((30, 30, 200))


def files(gallery) -> list[Path]:
    return sorted(p for p in gallery.photos.root.rglob("*") if p.is_file())


def original(gallery, data: bytes) -> Path:
    return gallery.photos.original(photo_id(sha256_hex(data)), "JPEG")


async def add(client, data: bytes) -> httpx.Response:
    return await client.post("/v1/dogs", files={"image": ("d.jpg", data)})


async def whole_or_nothing(client, gallery, data: bytes) -> bool:
    """True: the dog and its photo are both there; False: neither is. Anything else fails the test."""
    dog = photo_id(sha256_hex(data))
    stored = (await client.get(f"/v1/dogs/{dog}")).status_code == 200
    assert stored == original(gallery, data).exists(), "an entry without its photo, or a photo without its entry"
    if stored:
        assert (await client.get(f"/v1/dogs/{dog}/image")).status_code == 200
    assert not [p for p in files(gallery) if p.name.startswith(".tmp-")]
    return stored


async def test_an_upsert_that_timed_out_after_it_was_applied_keeps_the_photo(running, monkeypatch):
    client, gallery = running
    real = gallery.index.upsert

    async def applied_then_lost(points):  # the store applied it; the answer never came back
        await real(points)
        raise UpstreamFailure("search unavailable: unreachable: ReadTimeout")

    monkeypatch.setattr(gallery.index, "upsert", applied_then_lost)
    assert (await add(client, RED)).status_code == 503
    assert await whole_or_nothing(client, gallery, RED)  # was: the entry kept, its photo deleted (404 for good)
    monkeypatch.setattr(gallery.index, "upsert", real)
    again = await add(client, RED)
    assert again.status_code == 200 and again.json()["id"] == photo_id(sha256_hex(RED))


async def test_when_the_outcome_cannot_be_seen_the_photo_stays_and_a_retry_completes_the_dog(running, monkeypatch):
    client, gallery = running
    real_upsert, real_lookup = gallery.index.upsert, gallery.index.lookup
    calls = []

    async def timed_out(points):
        raise TimedOut("search: timed out")

    async def down(ids):
        calls.append(ids)
        if len(calls) > 1:  # the first lookup (is it stored?) answers; the look after the failure cannot
            raise UpstreamFailure("search unavailable")
        return await real_lookup(ids)

    monkeypatch.setattr(gallery.index, "upsert", timed_out)
    monkeypatch.setattr(gallery.index, "lookup", down)
    assert (await add(client, RED)).status_code == 504
    assert original(gallery, RED).exists()  # unknown outcome: kept (check --repair removes it if it stays orphan)
    monkeypatch.setattr(gallery.index, "upsert", real_upsert)
    monkeypatch.setattr(gallery.index, "lookup", real_lookup)
    assert (await add(client, RED)).status_code == 201
    assert await whole_or_nothing(client, gallery, RED)


async def test_a_refused_upsert_removes_the_photo_it_wrote_and_only_that(running, monkeypatch):
    client, gallery = running

    async def refused(points):
        raise InvalidInput("search: bad point")

    monkeypatch.setattr(gallery.index, "upsert", refused)
    assert (await add(client, RED)).status_code == 422
    assert not await whole_or_nothing(client, gallery, RED)
    # BLUE's file is there already (another process's upload, about to store its entry): not this call's to remove
    gallery.photos.save(photo_id(sha256_hex(BLUE)), "JPEG", BLUE)
    assert (await add(client, BLUE)).status_code == 422
    assert original(gallery, BLUE).exists()


async def test_two_uploads_of_one_photo_make_one_dog(running, monkeypatch):
    client, gallery = running
    real = gallery.embedder.embed

    async def slow(images):  # both requests are in flight before either stores anything
        await asyncio.sleep(0.2)
        return await real(images)

    monkeypatch.setattr(gallery.embedder, "embed", slow)
    first, second = await asyncio.gather(add(client, RED), add(client, RED))
    assert sorted([first.status_code, second.status_code]) == [200, 201]
    assert first.json()["id"] == second.json()["id"] == photo_id(sha256_hex(RED))
    assert (await client.get("/v1/dogs")).json()["total"] == 1
    assert await whole_or_nothing(client, gallery, RED)


async def test_a_delete_racing_an_upload_of_the_same_photo_leaves_the_whole_dog_or_nothing(running, monkeypatch):
    client, gallery = running
    dog = (await add(client, RED)).json()["id"]
    real_delete, real_upsert = gallery.index.delete, gallery.index.upsert
    upserting = asyncio.Event()
    uploads = []

    async def slow_upsert(points):  # the upload's file is written; its entry comes a moment later
        upserting.set()
        await asyncio.sleep(0.2)
        await real_upsert(points)

    async def delete_then_upload(point_id):
        # The delete has removed the entry; before it removes the photo, the same photo is uploaded again.
        await real_delete(point_id)
        uploads.append(asyncio.create_task(add(client, RED)))
        await asyncio.wait_for(upserting.wait(), 5)

    monkeypatch.setattr(gallery.index, "upsert", slow_upsert)
    monkeypatch.setattr(gallery.index, "delete", delete_then_upload)
    assert (await client.delete(f"/v1/dogs/{dog}")).status_code == 204
    assert (await uploads[0]).status_code == 201
    assert await whole_or_nothing(client, gallery, RED)  # was: the new entry without its photo


async def test_deletes_and_uploads_of_one_photo_in_any_order_leave_the_whole_dog_or_nothing(running):
    client, gallery = running
    for round in range(6):
        dog = (await add(client, RED)).json()["id"]
        calls = [client.delete(f"/v1/dogs/{dog}"), add(client, RED), add(client, RED)]
        await asyncio.gather(*(calls if round % 2 else calls[::-1]))
        await whole_or_nothing(client, gallery, RED)


async def test_a_stored_dog_whose_photo_was_lost_gets_it_back_from_the_same_upload(running):
    client, gallery = running
    dog = (await add(client, RED)).json()["id"]
    assert (await client.get(f"/v1/dogs/{dog}/image?size=thumbnail")).status_code == 200
    for path in files(gallery):
        path.unlink()  # lost (a power cut before writes were durable, a hand's rm)
    assert (await client.get(f"/v1/dogs/{dog}/image")).status_code == 404
    again = await add(client, RED)
    assert again.status_code == 200 and again.json()["id"] == dog
    image = await client.get(f"/v1/dogs/{dog}/image")
    assert image.status_code == 200 and image.content == RED
    assert (await client.get(f"/v1/dogs/{dog}/image?size=thumbnail")).status_code == 200  # made again


def fail_photo_writes(monkeypatch, root: Path, err: int = errno.ENOSPC) -> None:
    """The disk under `root` fills up: the first write to a file there stores part of its bytes, the next fails."""
    real = os.write

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(root)):
            if len(data) > 1:
                return real(fd, bytes(data[:len(data) // 2]))
            raise OSError(err, os.strerror(err))
        return real(fd, data)

    monkeypatch.setattr(os, "write", write)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT])
async def test_a_full_disk_answers_507_and_stores_nothing(running, monkeypatch, err):
    client, gallery = running
    fail_photo_writes(monkeypatch, gallery.photos.root, err)
    r = await add(client, RED)
    assert r.status_code == 507, r.text  # was: 500
    assert r.json()["code"] == "storage_full" and "disk is full" in r.json()["detail"]
    assert files(gallery) == []  # no partial file, no temporary file
    assert (await client.get("/v1/dogs")).json()["total"] == 0  # no entry
    monkeypatch.undo()
    assert (await add(client, RED)).status_code == 201
    assert await whole_or_nothing(client, gallery, RED)


async def test_a_batch_that_fills_the_disk_removes_the_photos_it_had_written(running, monkeypatch):
    client, gallery = running
    limits = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)
    batch = [(Upload(data, {}), limits.probe(data)) for data in (RED, BLUE)]
    real = gallery.photos.save
    saved = []

    def second_fails(dog_id, fmt, data):
        if saved:
            fail_photo_writes(monkeypatch, gallery.photos.root)
        saved.append(dog_id)
        return real(dog_id, fmt, data)

    monkeypatch.setattr(gallery.photos, "save", second_fails)
    from dogsearch.core.errors import StorageFull

    with pytest.raises(StorageFull):
        await gallery.ingest.add_many(batch)
    assert len(saved) == 2 and files(gallery) == []
    assert await gallery.ingest.stored([u.entry_id for u, _ in batch]) == {}


async def test_a_photo_is_on_disk_before_its_vector_is_stored(running, monkeypatch):
    client, gallery = running
    events = []
    real_fsync, real_upsert = os.fsync, gallery.index.upsert

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    async def upsert(points):
        events.append(("upsert", ""))
        await real_upsert(points)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(gallery.index, "upsert", upsert)
    assert (await add(client, RED)).status_code == 201
    path = original(gallery, RED)
    upsert_at = events.index(("upsert", ""))
    synced = [target for kind, target in events[:upsert_at] if kind == "fsync"]
    assert any(".tmp-" in t and t.endswith(path.name) for t in synced)  # the file's bytes, before the rename
    assert str(path.parent) in synced  # the folder's entry, after it
    assert str(gallery.photos.root) in synced  # the new fan-out folders' entries too
