"""A photo stored already, added again: no second dog, and none of the fields sent lost. The dog gets those it lacks
(its key's own dog), on every photo of it; a field it holds another value of, or another key's dog lacking one, is a
PhotoStoredAlready naming the dog, and nothing changes. (The API's answers are in tests/gateway/test_dogs.py, a bulk
job's in tests/jobs/test_stored_fields.py.)"""
from __future__ import annotations

import re

import pytest

from dogsearch.gallery.errors import PhotoStoredAlready
from dogsearch.gallery.ingest import Upload
from tests.images import solid

RED, BLUE = solid((200, 30, 30)), solid((30, 30, 200))


async def test_a_stored_photo_added_again_fills_in_what_its_dog_lacks_and_loses_nothing(running):
    client, gallery = running
    rex = (await client.post("/v1/dogs", files={"image": ("a.jpg", RED)}, data={"name": "rex"})).json()
    assert (await client.post(f"/v1/dogs/{rex['id']}/photos", files={"image": ("b.jpg", BLUE)})).status_code == 201
    info = gallery.limits.probe(RED)

    async def entries() -> list[dict]:
        return (await gallery.index.scroll(10, None, {"dog_id": rex["id"]}))["points"]

    # add_many is a bulk job's way in (a photo another call stored since the job looked), add a single photo's
    refused = [(Upload(RED, {"name": "max"}), "with other values than those sent (name: 'rex' stored, 'max' sent)"),
               (Upload(RED, {"breed": "beagle"}, owner="alice"), "another key's, without fields sent (breed: "
                                                                  "'beagle')")]
    for upload, said in refused:
        named = re.escape(f"this photo is stored already as dog {rex['id']}, {said}")
        with pytest.raises(PhotoStoredAlready, match=named):
            await gallery.ingest.add_many([(upload, info)])
        with pytest.raises(PhotoStoredAlready) as one:
            await gallery.ingest.add(upload)
        assert one.value.dog_id == rex["id"]
    assert [e["payload"]["name"] for e in await entries()] == ["rex", "rex"]
    assert all("breed" not in e["payload"] for e in await entries())

    [[again]] = await gallery.ingest.add_many([(Upload(RED, {"name": "rex", "breed": "Beagle"}), info)])
    assert (again.created, again.dog.id, again.dog.payload["breed"]) == (False, rex["id"], "Beagle")
    # on both its photos, matched as a PATCH's breed is
    assert [(e["payload"]["breed"], e["payload"]["breed_key"]) for e in await entries()] == [("Beagle", "beagle")] * 2
    assert not (await gallery.ingest.add(Upload(RED, {"status": "lost"}))).created
    assert (await gallery.dog(rex["id"])).payload["status"] == "lost"
