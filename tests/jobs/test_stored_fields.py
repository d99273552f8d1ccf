"""A bulk job over photos stored before it: each is `already_stored`, its dog given the fields the job gives the file
(its manifest row's, the job's payload, its breed folder) that it lacks; a file whose dog holds another value of one
fails naming the dog and the fields. A row's fields are never dropped without a word, and no dog is stored twice."""
from __future__ import annotations

import shutil

import pytest

from tests.fakes import ColorGridModel, serving
from tests.jobs.helpers import all_dogs, wait_job
from tests.jobs.test_embedded import app_for


@pytest.fixture
async def client(tmp_path):
    async with serving(app_for(tmp_path, ColorGridModel(), batch_size=4)) as c:
        yield c


async def index(client, path, **body) -> dict:
    return await wait_job(client, (await client.post("/v1/jobs/index", json={"path": str(path), **body})).json()["id"])


async def test_a_row_fills_in_what_its_stored_dog_lacks_and_fails_naming_the_dog_where_it_holds_another_value(
        client, photos, tmp_path):
    shelter = tmp_path / "in" / "shelter"
    shelter.mkdir()
    for name, source in zip("abcde", sorted(photos.rglob("*.jpg")), strict=False):
        shutil.copy(source, shelter / f"{name}.jpg")
    dora = (await client.post("/v1/dogs", files={"image": ("d.jpg", (shelter / "d.jpg").read_bytes())},
                              data={"name": "Dora"})).json()["id"]
    labels = shelter / "labels.csv"
    # e is a dog of its own photos (one here), whose fields are its first row's
    labels.write_text("path,name,status,dog\na.jpg,Rex,lost,\nb.jpg,Ben,found,\nc.jpg,,,\nd.jpg,Dora,,\n"
                      "e.jpg,Eddie,,E\n")
    first = await index(client, shelter, labels="csv")
    assert (first["indexed"], first["already_stored"], first["failed"]) == (4, 1, 0), first
    before = {d["id"]: d["payload"] for d in await all_dogs(client)}

    labels.write_text("path,name,status,dog\na.jpg,Rex,found,\nb.jpg,Ben,,\nc.jpg,Cleo,,\nd.jpg,Dora,home,\n"
                      "e.jpg,Ed,,E\n")
    again = await index(client, shelter, labels="csv")
    assert (again["indexed"], again["already_stored"], again["failed"]) == (0, 3, 2), again
    now = {d["id"]: d["payload"] for d in await all_dogs(client)}
    dog_of = {p["name"]: d for d, p in now.items() if "name" in p}
    assert {e["file"]: e["reason"] for e in again["errors"]} == {
        "a.jpg": f"this photo is stored already as dog {dog_of['Rex']}, with other values than those sent (status: "
                 "'lost' stored, 'found' sent): adding it again changes no dog; change that dog's fields instead",
        "e.jpg": f"this photo is stored already as dog {dog_of['Eddie']}, with other values than those sent (name: "
                 "'Eddie' stored, 'Ed' sent): adding it again changes no dog; change that dog's fields instead"}
    # c got its name, Dora her status; the others are as they were
    assert now[dog_of["Cleo"]] == before[dog_of["Cleo"]] | {"name": "Cleo"}
    assert dog_of["Dora"] == dora and now[dora] == before[dora] | {"status": "home"}
    assert {d: p for d, p in now.items() if d not in (dora, dog_of["Cleo"])} == \
        {d: p for d, p in before.items() if d not in (dora, dog_of["Cleo"])}


async def test_a_folder_indexed_after_one_of_its_breed_folders_gives_those_photos_their_breed(client, photos):
    beagle = await index(client, photos / "beagle")
    assert beagle["indexed"] == 4 and all("breed" not in d["payload"] for d in await all_dogs(client)), beagle
    everything = await index(client, photos)
    assert (everything["indexed"], everything["already_stored"], everything["failed"]) == (36, 4, 0), everything
    dogs = await all_dogs(client)
    assert len(dogs) == 40 and all(d["payload"].get("breed") for d in dogs)
