"""Bulk jobs that group photos into dogs: one folder per dog (labels "dogs") or a manifest's `dog` column. The
photos of a group are one dog with several photos; a re-run adds nothing; a batch never splits a dog. (The killed
worker case is in test_worker_process.py.)"""
from __future__ import annotations

import hashlib
import json

import pytest

from dogsearch.gallery.records import photo_id
from dogsearch.jobs.sources import MAX_DOG_PHOTOS, Item, JobInputError, grouped
from dogsearch.jobs.work import batches
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.jobs.helpers import all_dogs, wait_job


@pytest.fixture
async def client(tmp_path):
    app = fake_all_in_one(tmp_path / "data", ColorGridModel(), jobs_options={
        "broker_url": None, "allowed_roots": [str(tmp_path / "in")], "batch_size": 6})
    async with serving(app) as c:
        yield c


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def photos_of(client, dog: dict) -> list[dict]:
    return (await client.get(f"/v1/dogs/{dog['id']}")).json()["photos"]


async def test_one_folder_a_dog_makes_dogs_of_several_photos_and_a_rerun_adds_nothing(client, photos):
    body = {"path": str(photos), "labels": "dogs", "payload": {"shelter": "north"}}
    job = await wait_job(client, (await client.post("/v1/jobs/index", json=body)).json()["id"])
    assert (job["state"], job["total"], job["indexed"], job["failed"]) == ("done", 40, 40, 0), job
    dogs = await all_dogs(client)
    assert len(dogs) == 10  # ten folders, four photos each
    folder_of = {sha(p): p.parent.name for p in photos.rglob("*.jpg")}
    for dog in dogs:
        listed = await photos_of(client, dog)
        assert len(listed) == 4 and sum(p["cover"] for p in listed) == 1
        shas = {(await client.get(p["image_url"])).content for p in listed}
        assert len({folder_of[hashlib.sha256(data).hexdigest()] for data in shas}) == 1  # one folder's photos
        assert dog["payload"]["shelter"] == "north" and "breed" not in dog["payload"]
    # every photo carries the dog's fields: a filter finds the dog through any of them
    query = next(photos.rglob("*.jpg")).read_bytes()
    hits = (await client.post("/v1/search", files={"image": ("q.jpg", query)},
                              data={"filter": json.dumps({"shelter": "north"}), "k": "20"})).json()["results"]
    assert len(hits) == 10 == len({h["id"] for h in hits}) and hits[0]["score"] > 0.999

    again = await wait_job(client, (await client.post("/v1/jobs/index", json=body)).json()["id"])
    assert (again["indexed"], again["already_stored"], again["failed"]) == (0, 40, 0), again
    assert len(await all_dogs(client)) == 10
    assert sum([len(await photos_of(client, d)) for d in dogs]) == 40


async def test_a_manifest_dog_column_groups_rows_and_the_first_row_gives_the_fields(client, photos):
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    # rex: rows 0, 2, 4 (scattered); fido: rows 1, 3; row 5 has no dog: a dog of its own
    rows = [(files[0], "rex", "Rex"), (files[1], "fido", "Fido"), (files[2], "rex", "Other name"),
            (files[3], "fido", ""), (files[4], "rex", ""), (files[5], "", "Solo")]
    (photos / "dogs.csv").write_text("path,dog,name\n" + "".join(f"{f},{d},{n}\n" for f, d, n in rows))
    job = await wait_job(client, (await client.post("/v1/jobs/index",
                                                    json={"path": str(photos / "dogs.csv")})).json()["id"])
    assert (job["state"], job["indexed"], job["failed"]) == ("done", 6, 0), job
    dogs = {d["payload"].get("name"): d for d in await all_dogs(client)}
    assert sorted(dogs) == ["Fido", "Rex", "Solo"]
    assert [len(await photos_of(client, dogs[n])) for n in ("Rex", "Fido", "Solo")] == [3, 2, 1]
    rex_photos = await photos_of(client, dogs["Rex"])
    assert rex_photos[0]["id"] == dogs["Rex"]["id"]  # its first row's photo is the dog (and its cover)
    # the third row's name is not Rex's: a photo takes its dog's fields
    shown = (await client.post("/v1/search", files={"image": ("q.jpg", (photos / files[2]).read_bytes())},
                               data={"k": "1"})).json()["results"][0]
    assert shown["id"] == dogs["Rex"]["id"] and shown["payload"]["name"] == "Rex"
    assert shown["photo_id"] == photo_id(sha(photos / files[2])) != shown["id"]


async def test_a_group_whose_first_photo_has_no_dog_takes_the_next(client, photos, tmp_path):
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    (photos / "broken.jpg").write_bytes((photos / files[0]).read_bytes()[:200])
    rows = [("broken.jpg", "rex"), (files[1], "rex"), (files[2], "rex")]
    (photos / "dogs.csv").write_text("path,dog\n" + "".join(f"{f},{d}\n" for f, d in rows))
    job = await wait_job(client, (await client.post("/v1/jobs/index",
                                                    json={"path": str(photos / "dogs.csv")})).json()["id"])
    assert (job["indexed"], job["failed"]) == (2, 1), job
    [dog] = await all_dogs(client)
    assert len(await photos_of(client, dog)) == 2


async def test_an_unknown_labels_option_is_a_422_naming_the_options(client, photos):
    r = await client.post("/v1/jobs/index", json={"path": str(photos), "labels": "breeds"})
    assert r.status_code == 422 and "'dogs'" in r.text


async def test_a_manifest_with_a_bad_dog_cell_or_too_many_photos_a_dog_is_refused(client, photos):
    files = sorted(p.relative_to(photos).as_posix() for p in photos.rglob("*.jpg"))
    (photos / "bad.jsonl").write_text(json.dumps({"path": files[0], "dog": {"x": 1}}) + "\n")
    r = await client.post("/v1/jobs/index", json={"path": str(photos / "bad.jsonl")})
    assert r.status_code == 422 and "'dog' names a dog" in r.json()["detail"]
    with pytest.raises(JobInputError, match=f"at most {MAX_DOG_PHOTOS}"):
        grouped([Item(f"{n}.jpg", f"/x/{n}.jpg", {}, "rex") for n in range(MAX_DOG_PHOTOS + 1)])


def test_batches_keep_each_dog_whole_and_together():
    items = grouped([Item("a1", "/a1", {}, "a"), Item("s1", "/s1", {}), Item("b1", "/b1", {}, "b"),
                     Item("a2", "/a2", {}, "a"), Item("b2", "/b2", {}, "b"), Item("a3", "/a3", {}, "a"),
                     Item("s2", "/s2", {}), Item("s3", "/s3", {})])
    assert [i.file for i in items] == ["a1", "a2", "a3", "s1", "b1", "b2", "s2", "s3"]
    planned = [[row[0] for row in batch] for batch in batches(items, 3)]
    assert planned == [["a1", "a2", "a3"], ["s1", "b1", "b2"], ["s2", "s3"]]
    big = grouped([Item(f"c{n}", f"/c{n}", {}, "c") for n in range(5)] + [Item("s", "/s", {})])
    assert [[row[0] for row in b] for b in batches(big, 3)] == [[f"c{n}" for n in range(5)], ["s"]]


async def test_a_job_makes_a_photo_removed_from_its_dog_a_dog_of_its_own_once(client, photos):
    # Rex was made from photo A, then got photo B, then lost A: a job over A must not make A's entry a second cover
    # of Rex (its id is Rex's); A starts a dog with an id of its own, and a second run finds it stored.
    files = sorted(photos.rglob("*.jpg"))
    first, second = files[0].read_bytes(), files[1].read_bytes()
    rex = (await client.post("/v1/dogs", files={"image": ("a.jpg", first)})).json()["id"]
    assert (await client.post(f"/v1/dogs/{rex}/photos", files={"image": ("b.jpg", second)})).status_code == 201
    assert (await client.delete(f"/v1/dogs/{rex}/photos/{rex}")).status_code == 204
    job = await wait_job(client, (await client.post("/v1/jobs/index", json={"path": str(photos)})).json()["id"])
    assert (job["indexed"], job["already_stored"], job["failed"]) == (39, 1, 0), job
    dogs = await all_dogs(client)
    assert len(dogs) == 40 == len({d["id"] for d in dogs})  # Rex once: one cover
    rex_photos = await photos_of(client, next(d for d in dogs if d["id"] == rex))
    assert [p["id"] for p in rex_photos] == [photo_id(sha(files[1]))]
    made = [d for d in dogs if d["image_url"] == f"/v1/dogs/{d['id']}/photos/{rex}/image"]
    assert len(made) == 1 and made[0]["id"] != rex
    rerun = await wait_job(client, (await client.post("/v1/jobs/index", json={"path": str(photos)})).json()["id"])
    assert (rerun["indexed"], rerun["already_stored"], rerun["failed"]) == (0, 40, 0), rerun
