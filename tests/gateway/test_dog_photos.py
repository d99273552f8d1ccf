"""A dog with several photos through the public API: add one, list them, remove one (not the last), each dog once in
a search with the photo that matched, fields kept on every photo, the owner rule, and a search of several photos."""
from __future__ import annotations

import io
import json
from datetime import datetime

import pytest
from PIL import Image

from dogsearch.gallery.records import photo_id, regrown_dog_id, sha256_hex
from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import BLUE, GREEN, RED, add, search, total
from tests.gateway.test_security import ENTRIES as KEY_ENTRIES
from tests.gateway.test_security import as_, gateway_with
from tests.images import halves, solid

ORANGE, NEAR_BLUE, GREY = (230, 140, 20), (30, 50, 210), (128, 128, 128)


async def add_photo(client, dog_id: str, data: bytes, headers=None, **fields):
    return await client.post(f"/v1/dogs/{dog_id}/photos", files={"image": ("p.jpg", data)}, data=fields,
                             headers=headers)


def pid(data: bytes) -> str:
    return photo_id(sha256_hex(data))


async def test_a_second_photo_is_listed_served_and_found_and_the_same_photo_twice_is_one(gateway):
    rex = (await add(gateway, solid(RED), name="Rex", breed="beagle", status="lost",
                     location="52.52,13.405")).json()["id"]
    blue = solid(NEAR_BLUE)
    added = await add_photo(gateway, rex, blue)
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["id"] == rex and body["photo_id"] == pid(blue)
    assert [(p["id"], p["cover"]) for p in body["photos"]] == [(rex, True), (pid(blue), False)]
    with Image.open(io.BytesIO(blue)) as im:  # each photo's size, which its box is in
        assert (body["photos"][1]["width"], body["photos"][1]["height"]) == im.size
    assert body["payload"]["name"] == "Rex"  # the dog, read from its cover

    again = await add_photo(gateway, rex, blue)  # idempotent: the same photo of the same dog is one photo
    assert again.status_code == 200 and len(again.json()["photos"]) == 2
    assert await total(gateway) == 1  # one dog

    served = await gateway.get(body["photos"][1]["image_url"])
    assert served.status_code == 200 and served.content == blue
    assert (await gateway.get(body["photos"][1]["thumbnail_url"])).status_code == 200

    # Found by its second photo, once, with that photo; the second photo has the dog's fields, so filters keep it.
    for fields in ({}, {"breed": "beagle"}, {"status": "lost"}, {"near": "52.5,13.4", "radius_km": "10"}):
        results = (await search(gateway, solid(BLUE), **fields)).json()["results"]
        assert [r["id"] for r in results] == [rex], fields
        assert results[0]["photo_id"] == pid(blue)
        assert results[0]["image_url"] == f"/v1/dogs/{rex}/photos/{pid(blue)}/image"
    red = (await search(gateway, solid(RED))).json()["results"][0]
    assert red["photo_id"] == rex and red["score"] > 0.99  # the cover matched this time


async def test_a_dogs_photos_are_listed_cover_first_then_in_the_order_they_were_added(gateway, monkeypatch):
    import dogsearch.gallery.ingest as ingest

    clock = iter(range(10))

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 12, 7, 10, 0, next(clock), tzinfo=tz)

    monkeypatch.setattr(ingest, "datetime", Clock)
    rex = (await add(gateway, solid(RED))).json()["id"]
    added = [solid((40 * n, 90, 200 - 40 * n)) for n in range(5)]
    assert sorted(map(pid, added)) != list(map(pid, added))  # else the ids' order would pass too
    for photo in added:
        assert (await add_photo(gateway, rex, photo)).status_code == 201
    listed = (await gateway.get(f"/v1/dogs/{rex}")).json()["photos"]
    assert [p["id"] for p in listed] == [rex, *map(pid, added)]


async def test_patch_changes_the_fields_of_every_photo_so_no_filter_sees_stale_ones(gateway):
    rex = (await add(gateway, solid(RED), breed="beagle")).json()["id"]
    await add_photo(gateway, rex, solid(NEAR_BLUE))
    assert (await gateway.patch(f"/v1/dogs/{rex}", json={"breed": "husky", "status": "found"})).status_code == 200
    stale = (await search(gateway, solid(BLUE), breed="beagle")).json()["results"]
    assert stale == []  # the second photo, the nearest, no longer says beagle
    fresh = (await search(gateway, solid(BLUE), breed="husky", status="found")).json()["results"]
    assert [(r["id"], r["photo_id"]) for r in fresh] == [(rex, pid(solid(NEAR_BLUE)))]
    assert fresh[0]["payload"]["breed"] == "husky"


async def test_patch_null_removes_a_field_from_every_photo(gateway):
    rex = (await add(gateway, solid(RED), name="Rex", breed="beagle", status="lost", location="52.52,13.405",
                     notes="brown collar")).json()["id"]
    await add_photo(gateway, rex, solid(NEAR_BLUE))
    answer = await gateway.patch(f"/v1/dogs/{rex}", json={"name": None, "status": None, "location": None,
                                                          "notes": "", "breed": "husky"})
    assert answer.status_code == 200, answer.text
    payload = answer.json()["payload"]
    assert {"name", "status", "location"}.isdisjoint(payload) and payload["notes"] == ""
    assert payload["breed"] == "husky"
    for fields in ({"status": "lost"}, {"name": "Rex"}, {"near": "52.5,13.4", "radius_km": "10"}):
        assert (await search(gateway, solid(BLUE), **fields)).json()["results"] == [], fields
    found = (await search(gateway, solid(BLUE))).json()["results"][0]  # the second photo: removed there too
    assert found["photo_id"] == pid(solid(NEAR_BLUE)) and "name" not in found["payload"]
    await add_photo(gateway, rex, solid(GREY))  # a new photo takes the dog's fields, not the removed ones
    assert "name" not in (await gateway.get(f"/v1/dogs/{rex}")).json()["payload"]
    for refused in ({"sha256": None}, {"owner": None}):  # the server's fields stay the server's
        assert (await gateway.patch(f"/v1/dogs/{rex}", json=refused)).status_code == 422


@pytest.mark.parametrize(("fields", "words"), [
    ({"name": 12345}, "a text"),
    ({"notes": "a\ud800"}, "lone surrogate"),  # was a 500: the fields' size measured in UTF-8
    ({"name": "R" * 201}, "at most 200"),
    ({"name": "Rex\u0000"}, "control character"),
    ({"breed": "beagle\u001b[31m"}, "control character"),
])
async def test_patch_checks_the_fields_as_adding_a_dog_does(gateway, fields, words):
    rex = (await add(gateway, solid(RED), name="Rex")).json()["id"]
    as_json = {"content": json.dumps(fields), "headers": {"Content-Type": "application/json"}}  # ASCII: escapes
    for r in (await gateway.patch(f"/v1/dogs/{rex}", **as_json),
              await gateway.post("/v1/dogs", files={"image": ("a.jpg", solid(BLUE))},
                                 data={"payload": json.dumps(fields)})):
        assert r.status_code == 422 and words in r.json()["detail"], r.text
    payload = (await gateway.get(f"/v1/dogs/{rex}")).json()["payload"]
    assert payload["name"] == "Rex" and "notes" not in payload and "breed" not in payload
    assert await total(gateway) == 1


async def test_removing_photos_moves_the_cover_and_refuses_the_last_one(gateway, tmp_path):
    red, blue, green = solid(RED), solid(NEAR_BLUE), solid(GREEN)
    rex = (await add(gateway, red, name="Rex")).json()["id"]
    await add_photo(gateway, rex, blue)
    await add_photo(gateway, rex, green)
    gone = await gateway.delete(f"/v1/dogs/{rex}/photos/{pid(blue)}")
    assert gone.status_code == 204
    photos = (await gateway.get(f"/v1/dogs/{rex}")).json()["photos"]
    assert [p["id"] for p in photos] == [rex, pid(green)]
    assert (await gateway.get(f"/v1/dogs/{rex}/photos/{pid(blue)}/image")).status_code == 404
    assert not list((tmp_path / "data" / "photos").rglob(f"{pid(blue)}.*"))  # no entry shows it: its file goes

    # The cover goes: the other photo becomes the cover; the dog keeps its id, fields and place in lists.
    assert (await gateway.delete(f"/v1/dogs/{rex}/photos/{rex}")).status_code == 204
    dog = (await gateway.get(f"/v1/dogs/{rex}")).json()
    assert [(p["id"], p["cover"]) for p in dog["photos"]] == [(pid(green), True)]
    assert dog["payload"]["name"] == "Rex" and dog["payload"]["sha256"] == sha256_hex(green)
    # the dog's URLs are its cover photo's own; they and the older cover URL of the dog are kept by the browser
    # alone and asked again each time (a 304 while the same: test_images_answer_304_...)
    assert dog["image_url"] == f"/v1/dogs/{rex}/photos/{pid(green)}/image"
    served = await gateway.get(dog["image_url"])
    assert served.content == green and served.headers["cache-control"] == "private, no-cache"
    cover = await gateway.get(f"/v1/dogs/{rex}/image")
    assert cover.content == green and cover.headers["cache-control"] == "private, no-cache"
    page = (await gateway.get("/v1/dogs")).json()
    assert page["total"] == 1 and [d["id"] for d in page["items"]] == [rex]
    assert [r["id"] for r in (await search(gateway, red)).json()["results"]] == [rex]  # by its green photo now

    last = await gateway.delete(f"/v1/dogs/{rex}/photos/{pid(green)}")
    assert last.status_code == 409 and last.json()["code"] == "last_photo"
    assert "delete the dog" in last.json()["detail"]
    assert (await gateway.get(f"/v1/dogs/{rex}")).status_code == 200

    # The photo the dog was made from, uploaded again as a new dog (it showed another dog), starts a dog of its own
    # under an id of its own: Rex keeps his, and his one photo.
    apart = await add(gateway, red, name="Max")
    assert apart.status_code == 201, apart.text
    max_ = apart.json()["id"]
    assert max_ != rex and apart.json()["payload"]["name"] == "Max"
    assert [p["id"] for p in (await gateway.get(f"/v1/dogs/{max_}")).json()["photos"]] == [pid(red)]
    assert [p["id"] for p in (await gateway.get(f"/v1/dogs/{rex}")).json()["photos"]] == [pid(green)]
    again = await add(gateway, red)  # the same photo again is that dog, not a third
    assert again.status_code == 200 and again.json()["id"] == max_
    assert await total(gateway) == 2
    assert [r["id"] for r in (await search(gateway, red)).json()["results"]][0] == max_
    taken = await add_photo(gateway, rex, red)  # Max's photo now
    assert taken.status_code == 409 and taken.json()["code"] == "photo_of_another_dog"
    assert max_ in taken.json()["detail"] and taken.json()["dog_id"] == max_  # the dog a client links to
    assert (await gateway.delete(f"/v1/dogs/{max_}")).status_code == 204
    back = await add_photo(gateway, rex, red)  # as one of Rex's photos, it is welcome back
    assert back.status_code == 201 and {p["id"] for p in back.json()["photos"]} == {rex, pid(green)}
    assert sum(p["cover"] for p in back.json()["photos"]) == 1
    assert (await gateway.delete(f"/v1/dogs/{rex}")).status_code == 204
    assert await total(gateway) == 0
    assert not list((tmp_path / "data" / "photos").rglob("*.jpg"))


async def test_images_answer_304_to_the_copy_a_client_holds_and_head(gateway):
    # The ETag and Last-Modified they sent were never compared: the same photo came whole every time; HEAD was a 405.
    red, blue = solid(RED), solid(NEAR_BLUE)
    rex = (await add(gateway, red)).json()["id"]
    await add_photo(gateway, rex, blue)
    photo = f"/v1/dogs/{rex}/photos/{pid(blue)}/image"
    for url in (photo, f"{photo}?size=thumbnail", f"/v1/dogs/{rex}/image", f"/v1/dogs/{rex}/image?size=thumbnail"):
        first = await gateway.get(url)
        etag = first.headers["etag"]
        again = await gateway.get(url, headers={"If-None-Match": f'"other", {etag}'})
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), url
        assert again.headers["cache-control"] == "private, no-cache"
        assert (await gateway.get(url, headers={"If-None-Match": '"other"'})).content == first.content
        head = await gateway.head(url)
        assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", etag), url
        assert int(head.headers["content-length"]) == len(first.content)
    # A photo's URL shows its bytes for as long as it answers: its date can be trusted.
    modified = (await gateway.get(photo)).headers["last-modified"]
    assert (await gateway.get(photo, headers={"If-Modified-Since": modified})).status_code == 304
    older = (await gateway.get(photo, headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}))
    assert older.status_code == 200 and older.content
    # A cover is told by its ETag alone: removed, the dog's other (older) photo is its cover, not the copy held.
    cover = await gateway.get(f"/v1/dogs/{rex}/image")
    assert "last-modified" not in cover.headers
    assert (await gateway.delete(f"/v1/dogs/{rex}/photos/{rex}")).status_code == 204
    moved = await gateway.get(f"/v1/dogs/{rex}/image", headers={"If-None-Match": cover.headers["etag"]})
    assert moved.status_code == 200 and moved.content == (await gateway.get(photo)).content != cover.content


async def test_a_photo_removed_from_the_dog_it_made_starts_a_bounded_number_of_dogs(gateway):
    # Each round: the red photo starts a dog, which gets another photo and loses the red one; the red photo's dogs
    # have ids of their own, and the ninth is refused (each id tried is one more look-up: bounded).
    red, dogs = solid(RED), []
    for n in range(9):
        made = await add(gateway, red)
        assert made.status_code == 201, made.text
        dogs.append(made.json()["id"])
        assert (await add_photo(gateway, dogs[-1], solid((10 + 20 * n, 200, 30)))).status_code == 201
        assert (await gateway.delete(f"/v1/dogs/{dogs[-1]}/photos/{pid(red)}")).status_code == 204
    assert dogs[0] == pid(red) and len(set(dogs)) == 9
    refused = await add(gateway, red)
    assert refused.status_code == 409 and refused.json()["code"] == "photo_of_another_dog"
    assert await total(gateway) == 9
    assert (await gateway.delete(f"/v1/dogs/{dogs[3]}")).status_code == 204  # an id free again is taken
    assert (await add(gateway, red)).json()["id"] == dogs[3]


async def test_a_dog_whose_cover_moves_hides_no_other_dog_from_the_id_check(tmp_path, fake_model):
    # delete_photo sets the new cover before it deletes the old: for a moment a dog has two. The check of which ids
    # are dogs read as many covers as ids asked, so those two could hide another dog, whose id then looked free.
    app = fake_all_in_one(tmp_path / "data", fake_model)
    async with serving(app) as client:
        rex = (await add(client, solid(RED))).json()["id"]
        await add_photo(client, rex, solid(NEAR_BLUE))
        fido = (await add(client, solid((10, 10, 200)))).json()["id"]
        assert fido > max(rex, pid(solid(NEAR_BLUE)))  # read after Rex's two covers, by id: the case that hid it
        ingest = app.state.parts.gallery.ingest
        await ingest.index.set_payload([pid(solid(NEAR_BLUE))], {"cover": True})  # Rex's cover, mid-move
        assert await ingest.new_dog_ids([rex, fido]) == {
            rex: regrown_dog_id(rex, 1), fido: regrown_dog_id(fido, 1)}


async def test_bad_input_is_a_clear_4xx_and_changes_nothing(gateway):
    rex = (await add(gateway, solid(RED))).json()["id"]
    fido = (await add(gateway, solid(BLUE))).json()["id"]
    unknown = "00000000-0000-0000-0000-000000000000"
    assert (await add_photo(gateway, unknown, solid(GREEN))).status_code == 404
    assert (await gateway.delete(f"/v1/dogs/{rex}/photos/{unknown}")).status_code == 404
    assert (await gateway.delete(f"/v1/dogs/{rex}/photos/not-a-photo")).status_code == 422
    assert (await gateway.get(f"/v1/dogs/{rex}/photos/{pid(solid(BLUE))}/image")).status_code == 404  # fido's
    not_image = await gateway.post(f"/v1/dogs/{rex}/photos", files={"image": ("x.jpg", b"not an image at all")})
    assert not_image.status_code == 415
    fields = await add_photo(gateway, rex, solid(GREEN), name="Other")
    assert fields.status_code == 422 and "PATCH" in fields.json()["detail"]
    other = await add_photo(gateway, rex, solid(BLUE))  # that photo's dog is fido
    assert other.status_code == 409 and other.json()["code"] == "photo_of_another_dog"
    assert fido in other.json()["detail"] and other.json()["dog_id"] == fido
    beyond = await add_photo(gateway, rex, solid(GREEN), dog="2")
    assert beyond.status_code == 422 and beyond.json()["code"] == "no_such_dog"
    too_big = await gateway.post(f"/v1/dogs/{rex}/photos", files={"image": ("x.jpg", b"\xff" * 200_001)})
    assert too_big.status_code == 413
    two = await gateway.post(f"/v1/dogs/{rex}/photos", files=[("image", ("a.jpg", solid(GREEN))),
                                                               ("image", ("b.jpg", solid(ORANGE)))])
    assert two.status_code == 422 and two.json()["code"] == "several_photos"
    assert [len((await gateway.get(f"/v1/dogs/{d}")).json()["photos"]) for d in (rex, fido)] == [1, 1]


async def test_only_the_dogs_owner_or_an_admin_adds_or_removes_its_photos(tmp_path):
    async with gateway_with(tmp_path, api_keys=KEY_ENTRIES) as client:
        rex = (await client.post("/v1/dogs", headers=as_("alice"), files={"image": ("a.jpg", solid(RED))})).json()["id"]
        for name, status in (("reader", 403), ("bob", 403)):
            refused = await add_photo(client, rex, solid(GREEN), headers=as_(name))
            assert refused.status_code == status and refused.json()["code"] == "forbidden", name
        assert (await add_photo(client, rex, solid(GREEN))).status_code == 401
        assert (await add_photo(client, rex, solid(GREEN), headers=as_("alice"))).status_code == 201
        assert (await add_photo(client, rex, solid(NEAR_BLUE), headers=as_("root"))).status_code == 201
        photos = (await client.get(f"/v1/dogs/{rex}", headers=as_("reader"))).json()["photos"]
        assert len(photos) == 3
        for name in ("reader", "bob"):
            refused = await client.delete(f"/v1/dogs/{rex}/photos/{photos[1]['id']}", headers=as_(name))
            assert refused.status_code == 403, name
        for photo, name in ((photos[1], "alice"), (photos[2], "root")):
            assert (await client.delete(f"/v1/dogs/{rex}/photos/{photo['id']}", headers=as_(name))).status_code == 204
        # the added photos are the dog's owner's, whoever added them: alice still owns the whole dog
        assert (await client.get(f"/v1/dogs/{rex}", headers=as_("alice"))).json()["owner"] == "alice"


async def test_a_search_of_several_photos_combines_them(gateway):
    # Rex's photo is orange; a query of a red and a yellow-ish photo of "him" is nearest to neither red nor yellow
    # dogs alone, but the mean of the two finds orange.
    rex = (await add(gateway, solid(ORANGE))).json()["id"]
    reddish = (await add(gateway, solid((230, 40, 40)))).json()["id"]
    yellow = (await add(gateway, solid((230, 230, 20)))).json()["id"]
    one = (await search(gateway, solid((240, 60, 30)), k="1")).json()
    assert one["query_photos"] == 1 and [r["id"] for r in one["results"]] == [reddish]
    files = [("image", ("a.jpg", solid((240, 60, 30)))), ("image", ("b.jpg", solid((235, 215, 20))))]
    both = await gateway.post("/v1/search", files=files, data={"k": "3"})
    assert both.status_code == 200, both.text
    answer = both.json()
    assert answer["query_photos"] == 2 and answer["results"][0]["id"] == rex
    assert {r["id"] for r in answer["results"]} == {rex, reddish, yellow}  # each dog once
    # the mean of the two photos' cosines: on the scale of one photo's, never above the better of the two
    singles = [{r["id"]: r["score"] for r in (await gateway.post("/v1/search", files=[f], data={"k": "3"})).json()
                ["results"]} for f in files]
    for r in answer["results"]:
        assert r["score"] == pytest.approx((singles[0][r["id"]] + singles[1][r["id"]]) / 2, abs=1e-5)


async def test_a_search_over_the_photo_cap_or_with_a_photo_without_a_dog_is_refused(tmp_path):
    async with gateway_with(tmp_path, max_query_photos=2) as client:
        await client.post("/v1/dogs", files={"image": ("a.jpg", solid(RED))})
        files = [("image", (f"{n}.jpg", solid(RED))) for n in range(3)]
        over = await client.post("/v1/search", files=files)
        assert over.status_code == 413 and "at most 2" in over.json()["detail"]
        bad = await client.post("/v1/search", files=[("image", ("a.jpg", solid(RED))),
                                                     ("image", ("b.jpg", b"not an image"))])
        assert bad.status_code == 415


async def test_the_max_rule_scores_each_dog_by_the_nearest_query_photo(tmp_path):
    async with gateway_with(tmp_path, query_combine="max") as client:
        red = (await client.post("/v1/dogs", files={"image": ("a.jpg", solid(RED))})).json()["id"]
        blue = (await client.post("/v1/dogs", files={"image": ("b.jpg", solid(BLUE))})).json()["id"]
        await client.post("/v1/dogs", files={"image": ("c.jpg", halves(GREY, GREEN))})
        files = [("image", ("a.jpg", solid(RED))), ("image", ("b.jpg", solid(BLUE)))]
        results = (await client.post("/v1/search", files=files, data={"k": "2"})).json()["results"]
        assert {r["id"] for r in results} == {red, blue} and all(r["score"] > 0.99 for r in results)


async def test_a_new_photo_of_a_dog_is_checked_against_the_watches(tmp_path):
    app = fake_all_in_one(tmp_path / "data")
    async with serving(app) as client:
        ingest = app.state.parts.gallery.ingest
        announced, check = [], ingest.on_stored

        async def record(entries):
            announced.append(entries)
            await check(entries)

        ingest.on_stored = record
        rex = (await add(client, solid(RED))).json()["id"]
        blue = solid(NEAR_BLUE)
        assert (await add_photo(client, rex, blue)).status_code == 201
        assert (await add_photo(client, rex, blue)).status_code == 200  # checked again: a retry adds nothing
        assert announced == [[rex], [pid(blue)], [pid(blue)]]


async def test_more_like_this_looks_with_all_of_a_dog_s_photos_as_a_search_of_them_would(gateway):
    rex = (await add(gateway, solid(RED))).json()["id"]
    others = [(await add(gateway, solid(c))).json()["id"] for c in (ORANGE, NEAR_BLUE, GREY)]
    cover_only = (await gateway.get(f"/v1/dogs/{rex}/similar", params={"k": 3})).json()["results"]
    await add_photo(gateway, rex, solid(BLUE))
    both = (await gateway.get(f"/v1/dogs/{rex}/similar", params={"k": 3})).json()["results"]
    files = [("image", ("a.jpg", solid(RED))), ("image", ("b.jpg", solid(BLUE)))]
    searched = (await gateway.post("/v1/search", files=files, data={"k": "4"})).json()["results"]
    expected = [(r["id"], r["score"]) for r in searched if r["id"] != rex]
    assert [(r["id"], r["score"]) for r in both] == [(i, pytest.approx(s, abs=1e-4)) for i, s in expected]
    assert {r["id"] for r in both} == set(others)
    near_blue = {r["id"]: r["score"] for r in both}[others[1]]
    assert near_blue > {r["id"]: r["score"] for r in cover_only}[others[1]] + 0.2  # its blue photo counts now
