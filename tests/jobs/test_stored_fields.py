"""A bulk job over photos stored before it: each is `already_stored`, its dog given the fields the job gives the file
(its manifest row's, the job's payload, its breed folder) that it lacks; a file whose dog holds another value of one
fails naming the dog and the fields. A row's fields are never dropped without a word, and no dog is stored twice."""
from __future__ import annotations

import shutil

import celery.contrib.testing.tasks  # noqa: F401  (the ping task start_worker expects)
import pytest
from celery.contrib.testing.worker import start_worker

from dogsearch.services.gateway.app import create_app
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.worker import worker_celery
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.gateway.test_security import ENTRIES as KEY_ENTRIES
from tests.gateway.test_security import as_
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


@pytest.fixture(params=["embedded", "celery"])
async def keyed(request, tmp_path):
    """A gateway with API keys whose jobs run in-process (SQLite) or on a Celery worker (Redis): each store
    records who started a job."""
    if request.param == "embedded":
        app = fake_all_in_one(tmp_path / "data", ColorGridModel(), gateway_options={"api_keys": KEY_ENTRIES},
                              jobs_options={"broker_url": None, "allowed_roots": [str(tmp_path / "in")]})
        async with serving(app) as c:
            yield c
        return
    jobs, gateway = request.getfixturevalue("settings")
    app = create_app(GatewaySettings(data_dir=gateway.data_dir, embedder_url=gateway.embedder_url,
                                     search_url=gateway.search_url, api_keys=KEY_ENTRIES), jobs_settings=jobs)
    with start_worker(worker_celery(jobs, gateway), pool="threads", concurrency=1, perform_ping_check=False,
                      shutdown_timeout=20):
        async with serving(app) as c:
            yield c


async def test_an_admin_s_job_fills_in_what_another_key_s_dog_lacks_as_the_admin_s_post(keyed, photos):
    """A photo of alice's dog, stored without the field the job gives: bob's job changes no other key's dog (the file
    fails, naming it), an admin's job fills it in, as the admin's POST /v1/dogs would."""
    beagle = photos / "beagle"
    first = sorted(beagle.glob("*.jpg"))[0]
    rex = (await keyed.post("/v1/dogs", headers=as_("alice"), files={"image": ("r.jpg", first.read_bytes())})).json()

    async def index(key: str) -> dict:
        r = await keyed.post("/v1/jobs/index", headers=as_(key), json={"path": str(beagle),
                                                                       "payload": {"shelter": "north"}})
        assert r.status_code == 202, r.text
        return await wait_job(keyed, r.json()["id"], headers=as_(key))

    bobs = await index("bob")
    assert (bobs["owner"], bobs["admin"], bobs["indexed"], bobs["failed"]) == ("bob", False, 3, 1), bobs
    assert f"dog {rex['id']}, another key's" in bobs["errors"][0]["reason"]
    roots = await index("root")
    assert (roots["owner"], roots["admin"], roots["state"], roots["already_stored"], roots["failed"]) == \
        ("root", True, "done", 4, 0), roots
    dog = (await keyed.get(f"/v1/dogs/{rex['id']}", headers=as_("alice"))).json()
    assert (dog["owner"], dog["payload"]["shelter"]) == ("alice", "north")
