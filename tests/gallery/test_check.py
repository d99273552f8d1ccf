"""`dogsearch check [--repair] [--drop-missing] [--json]` on a data folder: an entry whose photo is gone, a photo file
no entry shows, a dog without its cover, dogs of an older release's layout, an entry of another model, a photo without
its look-alike hash, a job stuck in running, a check of new dogs against the watches that was given up; what
--repair fixes and what it only reports."""
from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from dogsearch import cli
from dogsearch.gallery.check import check_gallery
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import photo_id, sha256_hex
from dogsearch.jobs.store import RedisJobStore, SqliteJobStore, new_job
from dogsearch.models.calibration import FILE_NAME
from dogsearch.search.edge import EdgeStore
from dogsearch.services.layout import DataLayout
from dogsearch.watches.store import WatchStore
from tests.conftest import FIXTURES
from tests.fakes import fake_all_in_one, serving
from tests.gallery.test_layout import write_old_layout
from tests.gateway.helpers import DARK_RED
from tests.gateway.helpers import RED as RED_DOG
from tests.gateway.test_samedog import CALIBRATION
from tests.images import encode, solid
from tests.jobs.servers import REDIS_URL, redis_db

RED, GREEN, BLUE, ORPHAN = (solid(c) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90)))
AN_HOUR_AGO = time.time() - 3600
BEAGLES = sorted((FIXTURES / "dogs" / "n02088364").glob("*.jpg"))[:2]
REPAIR_DOES = ("--repair removes the orphan files, gives the dogs without a cover one, upgrades the older release's "
               "dogs, hashes and files the photos, marks the copies, fails the stuck jobs, runs the given-up watch "
               "checks again and ends the watches of dogs no longer stored")


async def fill(root) -> dict[str, str]:
    """Three dogs; then RED's photo is lost, an orphan photo file is left (an hour old), GREEN's entry gets
    another model's vector, and a job is stuck in running. Returns the ids."""
    app = fake_all_in_one(root)
    async with serving(app) as client:
        ids = {}
        for name, data in (("red", RED), ("green", GREEN), ("blue", BLUE)):
            r = await client.post("/v1/dogs", files={"image": ("d.jpg", data)}, data={"name": name})
            assert r.status_code == 201, r.text
            ids[name] = r.json()["id"]
        gallery = app.state.parts.gallery
        green = (await gallery.index.lookup([ids["green"]]))[ids["green"]]
        await gallery.index.upsert([{"id": ids["green"], "vector": np.ones(48, np.float32) / np.sqrt(48),
                                     "payload": green["payload"] | {"model": "another-model"}}])
    photos = PhotoStore(DataLayout(root).photos)
    photos.original(ids["red"], "JPEG").unlink()
    ids["orphan"] = photo_id(sha256_hex(ORPHAN))
    photos.save(ids["orphan"], "JPEG", ORPHAN)
    os.utime(photos.original(ids["orphan"], "JPEG"), (AN_HOUR_AGO, AN_HOUR_AGO))
    jobs = SqliteJobStore(DataLayout(root).jobs / "jobs.sqlite3")
    stuck = new_job("stuck", source="path", path="/x", root="/x", labels=None, payload={}, roots=["/x"])
    stuck["created_at"] = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    jobs.create(stuck)
    jobs.start("stuck", 10)
    jobs._transition("stuck", ("running",), started_at=stuck["created_at"])  # started five hours ago
    jobs.close()
    return ids


def run_check(capsys, root, *flags) -> tuple[int, dict]:
    status = cli.main(["check", "--data-dir", str(root), "--json", *flags])
    return status, json.loads(capsys.readouterr().out)


def test_check_finds_each_kind_of_damage_and_repair_fixes_what_loses_nothing(tmp_path, capsys):
    root = tmp_path / "data"
    ids = asyncio.run(fill(root))
    status, report = run_check(capsys, root)
    assert status == 1 and not report["ok"]
    g = report["gallery"]
    assert g["model"] == "test-color-grid" and g["entries"] == 3
    assert [m["id"] for m in g["missing_photos"]] == [ids["red"]]
    assert g["orphan_files"] == [str(PhotoStore(root / "photos").original(ids["orphan"], "JPEG")
                                     .relative_to(root / "photos"))]
    assert g["other_model"] == [{"id": ids["green"], "model": "another-model"}]
    assert [j["id"] for j in report["jobs"]["stuck"]] == ["stuck"]
    assert g["removed_files"] == 0 and report["jobs"]["failed"] == 0  # without --repair nothing changes
    assert PhotoStore(root / "photos").original(ids["orphan"], "JPEG").exists()

    status, report = run_check(capsys, root, "--repair")
    g = report["gallery"]
    assert status == 1  # the entry without its photo and the other model's are reported, not removed
    assert g["removed_files"] == 1 and not PhotoStore(root / "photos").original(ids["orphan"], "JPEG").exists()
    assert report["jobs"]["failed"] == 1
    jobs = SqliteJobStore(root / "jobs" / "jobs.sqlite3")
    assert jobs.get("stuck")["state"] == "failed" and "no progress" in jobs.get("stuck")["error"]
    jobs.close()
    assert g["dropped_entries"] == 0 and len(g["missing_photos"]) == 1

    status, report = run_check(capsys, root, "--repair", "--drop-missing")
    assert report["gallery"]["dropped_entries"] == 1
    status, report = run_check(capsys, root)
    g = report["gallery"]
    assert g["entries"] == 2 and g["missing_photos"] == [] and g["orphan_files"] == []
    assert report["jobs"]["stuck"] == [] and len(g["other_model"]) == 1


def test_the_summary_line_says_what_was_found_and_what_was_done(tmp_path, capsys):
    root = tmp_path / "data"
    asyncio.run(fill(root))
    assert cli.main(["check", "--data-dir", str(root), "--repair"]) == 1
    line = capsys.readouterr().out.strip()
    assert line == ("checked 3 entries and 3 photo files: 1 without their photo (upload their photos again, or "
                    "--repair --drop-missing), 1 orphan photo files (1 removed), 0 dogs without a cover (0 given "
                    "one), 0 dogs of an older release's storage layout (0 upgraded), 1 of another model than "
                    "'test-color-grid', 0 photos without their look-alike hash (0 hashed), 0 not filed (0 filed), "
                    "0 unmarked copies of older photos (0 marked), 1 stuck jobs (1 failed), 0 given-up watch checks "
                    "(0 checked again), 0 open watches of dogs no longer stored (0 ended); not all fixed")


def test_the_summary_line_without_repair_says_that_repair_fixes_it(tmp_path, capsys):
    """As after a broker is turned on for a gallery ("70 not filed"): the line says what fixes it."""
    root = tmp_path / "data"
    asyncio.run(fill(root))
    assert cli.main(["check", "--data-dir", str(root)]) == 1
    line = capsys.readouterr().out.strip()
    assert line.endswith("1 stuck jobs, 0 given-up watch checks, 0 open watches of dogs no longer stored; not all "
                         "fixed: " + REPAIR_DOES)


async def a_given_up_check(root, models) -> tuple[str, str]:
    """A lost dog's watch, and a found dog like it whose check was given up as a worker gives one up (its search
    service down past the retry window): stored, not matched. Returns (the watch's id, the found dog's id)."""
    app = fake_all_in_one(root, gateway_options={"calibration_dir": models})
    async with serving(app) as client:
        lost = (await client.post("/v1/dogs", files={"image": ("d.jpg", solid(RED_DOG))},
                                  data={"status": "lost"})).json()["id"]
        watch = (await client.post("/v1/watches", json={"dog_id": lost})).json()["id"]
        app.state.parts.gallery.ingest.on_stored = None  # the check that would have run, lost
        found = (await client.post("/v1/dogs", files={"image": ("d.jpg", solid(DARK_RED))},
                                   data={"status": "found"})).json()["id"]
        store = app.state.parts.watches.store
        store.deliver_check("k", [found])
        store.give_up_check("k", "its search service was down for 86400 s (search unavailable)")
    return watch, found


def test_a_given_up_watch_check_is_shown_with_why_and_run_again_by_repair(tmp_path, capsys, monkeypatch):
    root, models = tmp_path / "data", tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(CALIBRATION.to_json()))
    monkeypatch.setenv("DOGSEARCH_GATEWAY_CALIBRATION_DIR", str(models))  # where the gateway read it
    watch, found = asyncio.run(a_given_up_check(root, models))

    assert cli.main(["check", "--data-dir", str(root)]) == 1
    first, given_up = capsys.readouterr().out.strip().splitlines()
    assert first.endswith("1 given-up watch checks, 0 open watches of dogs no longer stored; not all fixed: "
                          + REPAIR_DOES)
    assert given_up.startswith("watch check k of 1 new dogs, given up 20")
    assert given_up.endswith(": its search service was down for 86400 s (search unavailable)")

    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["watches"]["checked_again"] == 1, report
    assert report["watches"]["store"] == str(root / "watches" / "watches.sqlite3")
    store = WatchStore(root / "watches" / "watches.sqlite3")
    assert [m["dog_id"] for m in store.matches(watch, 10)] == [found]  # its alert, late rather than never
    assert store.given_up_checks() == []
    store.close()
    status, report = run_check(capsys, root)
    assert status == 0 and report["watches"]["given_up"] == []


async def add_rex_then_bella(root) -> tuple[str, str, str]:
    """Rex, lost, with a second photo; then Bella. (Rex, the id of his second photo, Bella)."""
    async with serving(fake_all_in_one(root)) as client:
        rex = (await client.post("/v1/dogs", files={"image": ("d.jpg", RED)},
                                 data={"name": "Rex", "status": "lost"})).json()["id"]
        r = await client.post(f"/v1/dogs/{rex}/photos", files={"image": ("d.jpg", solid((170, 40, 40)))})
        assert r.status_code == 201, r.text
        bella = (await client.post("/v1/dogs", files={"image": ("d.jpg", BLUE)}, data={"name": "Bella"})).json()
        return rex, r.json()["photo_id"], bella["id"]


async def read_rex(root, rex: str) -> tuple[dict, list[str], int]:
    """Rex as the API reads him (his cover's photo served), the dogs' list, and the status of his first photo."""
    async with serving(fake_all_in_one(root)) as client:
        r = await client.get(f"/v1/dogs/{rex}")
        assert r.status_code == 200, r.text
        assert (await client.get(r.json()["image_url"])).status_code == 200
        return r.json(), [d["id"] for d in (await client.get("/v1/dogs")).json()["items"]], \
            (await client.get(f"/v1/dogs/{rex}/photos/{rex}/image")).status_code


def test_a_dog_whose_cover_is_lost_keeps_its_other_photo_as_cover_its_fields_and_its_place(tmp_path, capsys):
    """Rex: the photo he was added with (his cover) lost, another photo of him kept. --drop-missing removes the lost
    one as a delete of that photo through the API would: Rex reads whole, his other photo now his cover, with his
    fields, and keeps his place among the newest dogs (Bella, added after him, still comes first)."""
    root = tmp_path / "data"
    rex, kept, bella = asyncio.run(add_rex_then_bella(root))
    PhotoStore(DataLayout(root).photos).original(rex, "JPEG").unlink()  # his first photo: his cover
    status, report = run_check(capsys, root, "--repair", "--drop-missing")
    assert status == 0 and report["gallery"]["dropped_entries"] == 1, report

    dog, listed, lost = asyncio.run(read_rex(root, rex))
    assert (dog["payload"]["name"], dog["payload"]["status"]) == ("Rex", "lost")
    assert [(p["id"], p["cover"]) for p in dog["photos"]] == [(kept, True)]
    assert listed == [bella, rex] and lost == 404
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["entries"] == 2, report


def test_a_dog_an_older_drop_missing_left_without_a_cover_is_named_and_given_one_by_repair(tmp_path, capsys):
    """Rex's cover photo lost, and its entry deleted alone, as --drop-missing did before it dropped as the API does
    (e41ea91): his other photo is stored, but the API reads no Rex. The check names him; --repair (without
    --drop-missing: nothing is lost) makes his other photo his cover, with his fields, dated by that photo as the
    layout's upgrade dates a dog (he came an hour before Bella: listed after her)."""
    root = tmp_path / "data"
    rex, kept, bella = asyncio.run(add_rex_then_bella(root))
    PhotoStore(DataLayout(root).photos).original(rex, "JPEG").unlink()

    async def drop_the_cover_alone() -> int:
        app = fake_all_in_one(root)
        async with serving(app) as client:
            index = app.state.parts.gallery.index
            an_hour_ago = datetime.fromtimestamp(AN_HOUR_AGO, UTC).isoformat(timespec="seconds")
            others = (await index.scroll(10, None, {"dog_id": rex, "$not": {"cover": True}}))["points"]
            await index.set_payload([p["id"] for p in others], {"created_at": an_hour_ago})
            await index.delete(rex)  # the cover's entry (the dog's id), as the older check deleted it
            return (await client.get(f"/v1/dogs/{rex}")).status_code

    assert asyncio.run(drop_the_cover_alone()) == 404
    assert cli.main(["check", "--data-dir", str(root)]) == 1
    assert "0 orphan photo files, 1 dogs without a cover, 0 dogs of an older" in capsys.readouterr().out
    status, report = run_check(capsys, root)
    assert status == 1 and report["gallery"]["without_cover"] == [rex], report["gallery"]

    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["covers_given"] == 1, report["gallery"]
    dog, listed, lost = asyncio.run(read_rex(root, rex))
    assert (dog["payload"]["name"], dog["payload"]["status"]) == ("Rex", "lost")
    assert [(p["id"], p["cover"]) for p in dog["photos"]] == [(kept, True)]
    assert listed == [bella, rex] and lost == 404
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["without_cover"] == [], report["gallery"]


def test_dogs_of_an_older_release_are_upgraded_by_repair_then_their_lost_photos_dropped(tmp_path, capsys):
    """A data folder an older release wrote (no dog ids: tests/gallery/test_layout.py), checked before a gateway
    started on it (which upgrades it), one of its photos lost. The check says the three dogs wait for the upgrade,
    which a gateway's start or --repair runs; --repair --drop-missing runs the gateway's upgrade first, then drops the
    dog of the lost photo as the API's delete would (before, the upgrade waited for a gateway, and the entry, which
    names no dog, was never found to drop)."""
    root = tmp_path / "data"
    layout = DataLayout(root)
    ids = write_old_layout(layout)
    PhotoStore(layout.photos).original(ids["green"], "JPEG").unlink()
    assert cli.main(["check", "--data-dir", str(root)]) == 1
    assert ("1 without their photo (upload their photos again, or --repair --drop-missing), 0 orphan photo files, "
            "0 dogs without a cover, 3 dogs of an older release's storage layout (a gateway's start upgrades them, "
            "as --repair does), ") in capsys.readouterr().out

    status, report = run_check(capsys, root, "--repair", "--drop-missing")
    g = report["gallery"]
    assert (g["old_layout"], g["upgraded"], g["dropped_entries"], g["without_cover"]) == (3, 3, 1, []), g
    assert status == 0 and (g["unhashed"], g["hashed"]) == (2, 2), g  # the dropped photo is none to hash
    with EdgeStore(layout.vectors, "dogs") as store:
        points, _ = store.scroll(10)
    assert sorted(p.id for p in points) == sorted([ids["red"], ids["blue"]])
    for point in points:  # upgraded as the gateway upgrades them: each its own dog's cover, dated
        assert point.payload["dog_id"] == point.payload["photo_id"] == point.id and point.payload["cover"] is True
        assert point.payload["dog_created_at"][:19] == point.payload["created_at"][:19]
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["old_layout"] == 0, report["gallery"]


def test_a_dog_dropped_for_its_lost_photo_has_its_copies_re_pointed_as_a_delete_does(tmp_path, capsys):
    """A photo and two copies of it (a messenger's half-size one, then a PNG), both marked copies of its dog; then
    the photo's file is lost and --drop-missing deletes its dog, as a delete through the API re-points the copies:
    the PNG names the half-size copy stored before it; the half-size one, with none stored before it, keeps its
    mark."""
    root = tmp_path / "data"
    original, half, png = asyncio.run(a_photo_and_two_copies(root))
    asyncio.run(stamp_in_order(root, [original, half, png]))
    PhotoStore(DataLayout(root).photos).original(original, "JPEG").unlink()
    status, report = run_check(capsys, root, "--repair", "--drop-missing")
    g = report["gallery"]
    assert status == 0 and (g["dropped_entries"], g["unmarked_copies"]) == (1, 0), report  # the drop re-pointed it
    stored = asyncio.run(payloads(root, [half, png]))
    assert stored[png]["near_duplicate_of"] == half and stored[half]["near_duplicate_of"] == original


def test_a_clean_gallery_checks_ok(tmp_path, capsys):
    root = tmp_path / "data"
    assert cli.main(["check", "--data-dir", str(root)]) == 0  # nothing stored yet
    assert "checked 0 entries" in capsys.readouterr().out


async def test_a_young_photo_file_is_an_upload_in_flight_not_an_orphan(running):
    client, gallery = running
    gallery.photos.save(photo_id(sha256_hex(ORPHAN)), "JPEG", ORPHAN)  # its entry comes a moment later
    report = await check_gallery(gallery.index, gallery.photos, "test-color-grid", repair=True)
    assert report.orphan_files == [] and report.removed_files == 0
    report = await check_gallery(gallery.index, gallery.photos, "test-color-grid", repair=True, grace_s=0)
    assert report.removed_files == 1


async def test_an_orphan_whose_entry_came_since_the_scan_is_kept(running, monkeypatch):
    client, gallery = running
    assert (await client.post("/v1/dogs", files={"image": ("d.jpg", BLUE)})).status_code == 201
    path = gallery.photos.original(photo_id(sha256_hex(ORPHAN)), "JPEG")
    gallery.photos.save(photo_id(sha256_hex(ORPHAN)), "JPEG", ORPHAN)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))
    real_scroll = gallery.index.scroll

    async def scan_then_upload(*args):  # the upload's entry is stored between the scan and the repair
        page = await real_scroll(*args)
        if not args[1]:  # the first page
            r = await client.post("/v1/dogs", files={"image": ("d.jpg", ORPHAN)})
            assert r.status_code == 201, r.text
        return page

    monkeypatch.setattr(gallery.index, "scroll", scan_then_upload)
    report = await check_gallery(gallery.index, gallery.photos, "test-color-grid", repair=True)
    assert report.removed_files == 0 and path.exists()


async def store_beagles(root) -> list[str]:
    app = fake_all_in_one(root)
    async with serving(app) as client:
        added = [await client.post("/v1/dogs", files={"image": ("d.jpg", path.read_bytes())}) for path in BEAGLES]
    assert [r.status_code for r in added] == [201, 201]
    assert all(r.json()["payload"]["phash"] for r in added)
    return [r.json()["id"] for r in added]


async def forget_hashes(root, ids: list[str]) -> None:
    """The entries as they were stored before every new photo got its hash: none in them."""
    app = fake_all_in_one(root)
    async with serving(app):
        index = app.state.parts.gallery.index
        for id, point in (await index.lookup(ids, with_vector=True)).items():
            payload = {k: v for k, v in point["payload"].items() if k != "phash"}
            await index.upsert([{"id": id, "vector": point["vector"], "payload": payload}])


async def stamp_in_order(root, ids: list[str]) -> None:
    """The entries stored in the order of `ids`, a second apart: the gallery's order of two look-alikes is their
    `created_at` (to the second), then their ids, and the tests' photos are stored within one second."""
    app = fake_all_in_one(root)
    async with serving(app):
        index = app.state.parts.gallery.index
        for n, id in enumerate(ids):
            await index.set_payload([id], {"created_at": f"2026-01-01T00:00:{n:02d}+00:00"})


def lose_filed_hashes(root) -> None:
    """The job store's hash index gone (a Redis flushed, a jobs/ folder that was not backed up)."""
    with sqlite3.connect(DataLayout(root).jobs / "jobs.sqlite3") as db:
        db.execute("DELETE FROM phash")


async def add_a_copy(root) -> dict:
    """The first beagle again, as a messenger app sends a photo back: half its size, recompressed."""
    photo = Image.open(BEAGLES[0])
    sent_back = encode(photo.resize((photo.width // 2, photo.height // 2)), "JPEG", quality=60)
    async with serving(fake_all_in_one(root)) as client:
        r = await client.post("/v1/dogs", files={"image": ("copy.jpg", sent_back)})
    assert r.status_code == 201, r.text
    return r.json()


def test_photos_stored_before_they_were_hashed_are_hashed_and_then_found_as_copies(tmp_path, capsys):
    root = tmp_path / "data"
    ids = asyncio.run(store_beagles(root))
    asyncio.run(forget_hashes(root, ids))
    lose_filed_hashes(root)
    status, report = run_check(capsys, root)
    assert status == 1 and report["gallery"]["unhashed"] == 2 and report["gallery"]["hashed"] == 0

    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["hashed"] == 2, report
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["unhashed"] == report["gallery"]["unfiled"] == 0
    assert asyncio.run(add_a_copy(root))["payload"]["near_duplicate_of"] == ids[0]


def test_a_copy_stored_before_its_original_could_be_found_is_marked(tmp_path, capsys):
    """A copy stored while its original's hash was not known (a gallery older than the hashes) is stored unmarked.
    Once the check has hashed the original, it finds the copy and marks it as it would have been marked when
    stored: a copy of the older photo's dog. The check afterwards finds nothing to do."""
    root = tmp_path / "data"
    ids = asyncio.run(store_beagles(root))
    asyncio.run(forget_hashes(root, ids))
    lose_filed_hashes(root)
    copy = asyncio.run(add_a_copy(root))
    assert "near_duplicate_of" not in copy["payload"]
    asyncio.run(stamp_in_order(root, [*ids, copy["id"]]))
    status, report = run_check(capsys, root)
    g = report["gallery"]
    assert status == 1 and (g["unhashed"], g["unmarked_copies"]) == (2, 0)  # the beagles' hashes are not known

    status, report = run_check(capsys, root, "--repair")
    g = report["gallery"]
    assert status == 0 and (g["hashed"], g["unmarked_copies"], g["marked"]) == (2, 1, 1), report
    assert g["copies"] == [{"photo_id": copy["id"], "of_dog": ids[0]}]  # one dog a photo: the ids are the same
    assert "1 unmarked copies of older photos (1 marked)" in cli.check.summary(report)
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["unmarked_copies"] == 0
    stored = asyncio.run(payloads(root, [*ids, copy["id"]]))
    assert stored[copy["id"]]["near_duplicate_of"] == ids[0]
    assert not any("near_duplicate_of" in stored[i] for i in ids)


def test_of_two_look_alikes_the_one_stored_later_is_the_copy(tmp_path, capsys):
    """The half-size copy came first, the original later: the original is the copy (the gallery's order)."""
    root = tmp_path / "data"
    copy = asyncio.run(add_a_copy(root))
    lose_filed_hashes(root)
    ids = asyncio.run(store_beagles(root))
    asyncio.run(forget_hashes(root, [copy["id"], *ids]))
    asyncio.run(stamp_in_order(root, [copy["id"], *ids]))
    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and (report["gallery"]["hashed"], report["gallery"]["marked"]) == (3, 1), report
    stored = asyncio.run(payloads(root, [copy["id"], *ids]))
    assert stored[ids[0]]["near_duplicate_of"] == copy["id"]
    assert "near_duplicate_of" not in stored[copy["id"]] and "near_duplicate_of" not in stored[ids[1]]


async def a_photo_and_two_copies(root) -> list[str]:
    """The first beagle, then two copies of it (a messenger's half-size one, then a PNG), each stored marked a copy
    of the first one's dog: their ids."""
    photo = Image.open(BEAGLES[0])
    async with serving(fake_all_in_one(root)) as client:
        ids = []
        for data in (BEAGLES[0].read_bytes(), encode(photo.resize((photo.width // 2, photo.height // 2)), "JPEG",
                                                     quality=60), encode(photo, "PNG")):
            r = await client.post("/v1/dogs", files={"image": ("d.jpg", data)})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            assert r.json()["payload"].get("near_duplicate_of") == (ids[0] if len(ids) > 1 else None)
        return ids


def test_a_copy_whose_original_was_deleted_names_the_look_alike_stored_before_it(tmp_path, capsys):
    """A photo and two copies of it (a messenger's half-size one, then a PNG), both marked copies of it; then the
    photo's entry is deleted without its copies being looked at again (a delete killed on its way, or one made by a
    version before they were). The PNG copies the half-size one as much: --repair marks it so. The half-size one has
    no look-alike stored before it: its mark, naming the deleted dog, is left (readers are not shown it)."""
    root = tmp_path / "data"
    original, half, png = asyncio.run(a_photo_and_two_copies(root))

    async def delete_first() -> None:
        app = fake_all_in_one(root)
        async with serving(app):
            await app.state.parts.gallery.index.delete(original)  # one dog a photo: its entry's id is the dog's

    asyncio.run(delete_first())
    asyncio.run(stamp_in_order(root, [half, png]))
    status, report = run_check(capsys, root)
    assert status == 1 and report["gallery"]["unmarked_copies"] == 1
    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["marked"] == 1
    stored = asyncio.run(payloads(root, [half, png]))
    assert stored[png]["near_duplicate_of"] == half and stored[half]["near_duplicate_of"] == original
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["unmarked_copies"] == 0


def test_a_photo_is_never_marked_a_copy_of_its_own_copy(tmp_path, capsys):
    """The copy was marked when it was stored, but its time says it came first (a worker whose clock is behind):
    the original is not marked a copy of it in turn."""
    root = tmp_path / "data"
    original = asyncio.run(store_beagles(root))[0]
    copy = asyncio.run(add_a_copy(root))
    assert copy["payload"]["near_duplicate_of"] == original
    asyncio.run(stamp_in_order(root, [copy["id"], original]))
    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["unmarked_copies"] == 0, report
    assert "near_duplicate_of" not in asyncio.run(payloads(root, [original]))[original]


async def payloads(root, ids: list[str]) -> dict[str, dict]:
    app = fake_all_in_one(root)
    async with serving(app):
        return {i: p["payload"] for i, p in (await app.state.parts.gallery.index.lookup(ids)).items()}


def test_hashes_no_longer_filed_are_filed_again(tmp_path, capsys):
    root = tmp_path / "data"
    ids = asyncio.run(store_beagles(root))
    lose_filed_hashes(root)
    status, report = run_check(capsys, root)
    assert status == 1 and report["gallery"]["unhashed"] == 0 and report["gallery"]["unfiled"] == 2

    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["filed"] == 2 and report["gallery"]["hashed"] == 0
    assert asyncio.run(add_a_copy(root))["payload"]["near_duplicate_of"] == ids[0]


def test_a_photo_dropped_for_its_lost_file_is_none_to_hash_or_file(tmp_path, capsys):
    """Two photos stored before they were hashed, their hashes not filed, one of them lost: --repair --drop-missing
    drops it and hashes the other, and says all is fixed, as the next check does (the dropped one counted as a photo
    to hash, which no file was left to hash)."""
    root = tmp_path / "data"
    ids = asyncio.run(store_beagles(root))
    asyncio.run(forget_hashes(root, ids))
    lose_filed_hashes(root)
    PhotoStore(DataLayout(root).photos).original(ids[1], "JPEG").unlink()
    status, report = run_check(capsys, root, "--repair", "--drop-missing")
    g = report["gallery"]
    assert (g["dropped_entries"], g["unhashed"], g["hashed"], g["unfiled"], g["filed"]) == (1, 1, 1, 0, 0), g
    assert status == 0 and "1 photos without their look-alike hash (1 hashed)" in cli.check.summary(report)
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["entries"] == 1


def test_a_photo_that_no_longer_decodes_is_named_not_hashed(tmp_path, capsys):
    root = tmp_path / "data"
    ids = asyncio.run(store_beagles(root))
    asyncio.run(forget_hashes(root, ids))
    damaged = PhotoStore(DataLayout(root).photos).original(ids[1], "JPEG")
    damaged.write_bytes(damaged.read_bytes()[:2000])
    status, report = run_check(capsys, root, "--repair")
    g = report["gallery"]
    assert status == 1 and g["hashed"] == 1 and [u["photo_id"] for u in g["unhashable"]] == [ids[1]]
    assert "truncated" in g["unhashable"][0]["reason"]


def test_with_a_broker_the_hashes_are_those_filed_in_redis(tmp_path, capsys, monkeypatch):
    """Services beside a broker file their hashes in Redis: the check reads and repairs those, not the data folder's."""
    redis_db().flushdb()
    root = tmp_path / "data"
    asyncio.run(store_beagles(root))  # filed in the data folder's SQLite store: none in Redis
    monkeypatch.setenv("DOGSEARCH_BROKER_URL", REDIS_URL)
    status, report = run_check(capsys, root)
    assert status == 1 and report["gallery"]["unhashed"] == 0 and report["gallery"]["unfiled"] == 2
    status, report = run_check(capsys, root, "--repair")
    assert status == 0 and report["gallery"]["filed"] == 2
    store = RedisJobStore(REDIS_URL)
    try:
        app = fake_all_in_one(root)

        async def entries():
            async with serving(app):
                return (await app.state.parts.gallery.index.scroll(10, None, None))["points"]

        for point in asyncio.run(entries()):
            value = int(point["payload"]["phash"], 16)
            assert (point["id"], value) in store.near([value])[0]
    finally:
        store.close()
        redis_db().flushdb()


def scaled_copies(folder, scales) -> list[bytes]:
    """The first beagle at each scale: look-alikes within a few bits of one another."""
    folder.mkdir(parents=True)
    photo = Image.open(BEAGLES[0])
    out = []
    for n, scale in enumerate(scales):
        data = encode(photo.resize((round(photo.width * scale), round(photo.height * scale))), "JPEG", quality=80)
        (folder / f"{n}.jpg").write_bytes(data)
        out.append(data)
    return out


def test_look_alikes_stored_by_one_batch_are_marked_in_the_order_the_check_reads(tmp_path, capsys):
    """Six copies of one photo in one batch of a job, all stored within one second: the first of them in the stored
    order (then their photo ids) is the original and the others name it or another stored before them, as the check
    reads it; before, the batch ordered them as listed, so the check found an "unmarked copy" in a fresh import and
    its repair could close a loop of copies."""
    from tests.jobs.helpers import wait_job

    root, folder = tmp_path / "data", tmp_path / "in" / "beagle"
    copies = scaled_copies(folder, (1.0, 0.95, 0.9, 0.85, 0.8, 0.75))

    async def index() -> dict:
        app = fake_all_in_one(root, jobs_options={"broker_url": None, "allowed_roots": [str(tmp_path / "in")]})
        async with serving(app) as client:
            r = await client.post("/v1/jobs/index", json={"path": str(folder.parent)})
            return await wait_job(client, r.json()["id"])

    job = asyncio.run(index())
    assert (job["indexed"], job["near_duplicates"]) == (6, 5), job
    ids = sorted(photo_id(sha256_hex(data)) for data in copies)
    stored = asyncio.run(payloads(root, ids))
    assert "near_duplicate_of" not in stored[ids[0]]  # the first by photo id: one second, one order
    assert all(stored[i]["near_duplicate_of"] in ids[:ids.index(i)] for i in ids[1:])
    status, report = run_check(capsys, root)
    assert status == 0 and report["gallery"]["unmarked_copies"] == 0, report["gallery"]


def test_the_check_never_closes_a_loop_of_copies(tmp_path, capsys):
    """Marks made before every look read one order (a batch's own look-alikes as listed): B copies A and C copies
    B, while C is the first stored. The check finds A unmarked with C stored before it, but marking A a copy of C
    would make A -> C -> B -> A, copies of copies with no original: it leaves A the original."""
    root = tmp_path / "data"
    a, b, c = (photo_id(sha256_hex(data)) for data in scaled_copies(tmp_path / "in", (1.0, 0.9, 0.8)))

    async def store_marked() -> None:
        app = fake_all_in_one(root)
        async with serving(app) as client:
            for n in range(3):
                data = (tmp_path / "in" / f"{n}.jpg").read_bytes()
                r = await client.post("/v1/dogs", files={"image": ("d.jpg", data)})
                assert r.status_code == 201, r.text
            index = app.state.parts.gallery.index
            await index.set_payload([a], {"created_at": "2026-01-01T00:00:02+00:00"})
            await index.set_payload([b], {"created_at": "2026-01-01T00:00:01+00:00", "near_duplicate_of": a})
            await index.set_payload([c], {"created_at": "2026-01-01T00:00:00+00:00", "near_duplicate_of": b})

    asyncio.run(store_marked())
    stored = asyncio.run(payloads(root, [a]))
    assert "near_duplicate_of" not in stored[a]
    status, report = run_check(capsys, root, "--repair")
    assert report["gallery"]["marked"] == 0 and status == 0, report["gallery"]
    assert "near_duplicate_of" not in asyncio.run(payloads(root, [a]))[a]
