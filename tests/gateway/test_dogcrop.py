"""Search and indexing work on each dog the detector finds (issue 18), with the tiny fakes: the blob detector boxes
each patch of colour on a light background, a plain photo shows no dog."""
from __future__ import annotations

import hashlib

import pytest
from PIL import Image

from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import BLUE, RED, add, search, total
from tests.images import encode, solid

BACKGROUND = (235, 235, 235)


def dogs_photo(*patches: tuple[tuple[int, int, int], tuple[int, int, int, int]], size=(160, 120),
               fmt: str = "PNG") -> bytes:
    """A light photo with a patch of colour (a "dog") at each (x0, y0, x1, y1)."""
    im = Image.new("RGB", size, BACKGROUND)
    for colour, (x0, y0, x1, y1) in patches:
        im.paste(Image.new("RGB", (x1 - x0, y1 - y0), colour), (x0, y0))
    return encode(im, fmt)


# a small red dog on the left, a larger blue one on the right: the blue one is dog 0
TWO_DOGS = dogs_photo((RED, (10, 30, 50, 80)), (BLUE, (80, 10, 150, 110)))
RED_DOG = dogs_photo((RED, (60, 30, 110, 90)))
BLUE_DOG = dogs_photo((BLUE, (20, 20, 100, 100)))
PLAIN = solid(BACKGROUND, (160, 120))


@pytest.fixture
async def gw(tmp_path):
    app = fake_all_in_one(tmp_path / "data", detector=True,
                          jobs_options={"broker_url": None, "allowed_roots": [str(tmp_path / "in")]})
    async with serving(app) as client:
        yield client


def near(box, expected, tolerance=10.0) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box, expected, strict=True))


async def test_detect_lists_the_dogs_largest_first_with_breed_guesses(gw):
    r = await gw.post("/v1/detect", files={"image": ("p.png", TWO_DOGS)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (160, 120)
    assert [d["index"] for d in body["dogs"]] == [0, 1]
    assert near(body["dogs"][0]["box"], (80, 10, 150, 110)) and near(body["dogs"][1]["box"], (10, 30, 50, 80))
    assert body["dogs"][0]["breed_guess"][0]["breed"] == "Kerry blue terrier"  # the fake's breed of a blue crop
    assert body["dogs"][1]["breed_guess"][0]["breed"] == "Irish setter"
    assert body["dogs"][0]["score"] == 0.9 and "vector" not in body["dogs"][0]
    assert body["seems"][0] == {"label": "golf ball", "p": 0.71}
    plain = (await gw.post("/v1/detect", files={"image": ("p.jpg", PLAIN)})).json()
    assert plain["dogs"] == [] and plain["seems"]  # no dog is an answer here, not an error


async def test_search_looks_for_the_chosen_dog_of_the_photo(gw):
    red = (await add(gw, RED_DOG, name="red")).json()["id"]
    blue = (await add(gw, BLUE_DOG, name="blue")).json()["id"]
    first = await search(gw, TWO_DOGS)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["dog"] == 0 and (body["width"], body["height"]) == (160, 120) and len(body["dogs"]) == 2
    assert body["breed_guess"] == body["dogs"][0]["breed_guess"]
    # the crop, not the photo: the blue dog far ahead of the red one (the margin adds a little background)
    assert body["results"][0]["id"] == blue and body["results"][0]["score"] > body["results"][1]["score"] + 0.5
    assert near(body["results"][0]["box"], (20, 20, 100, 100))
    second = (await search(gw, TWO_DOGS, dog="1")).json()
    assert second["dog"] == 1 and second["results"][0]["id"] == red
    assert second["results"][0]["score"] > second["results"][1]["score"] + 0.5
    assert second["breed_guess"][0]["breed"] == "Irish setter"


async def test_a_photo_without_a_dog_or_a_dog_it_does_not_show_is_a_422_with_the_reason(gw):
    await add(gw, RED_DOG)
    r = await search(gw, PLAIN)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "no_dog_found" and body["detail"] == "no dog found in this photo"
    # the classifier's guesses of 1 % or more: its third, beagle at 0.0004, read "0 %" in the UI
    assert body["seems"] == [{"label": "golf ball", "p": 0.71}, {"label": "tennis ball", "p": 0.2}]
    added = await gw.post("/v1/dogs", files={"image": ("p.png", PLAIN)})
    assert added.status_code == 422 and added.json()["seems"] == body["seems"], added.text
    for dog in ("2", "-1"):
        r = await search(gw, TWO_DOGS, dog=dog)
        assert r.status_code == 422 and r.json()["code"] == "no_such_dog", r.text
    assert "shows 2 dogs" in (await search(gw, TWO_DOGS, dog="2")).json()["detail"]
    assert "photo" not in body  # one photo: no need to say which
    several = await gw.post("/v1/search", files=[("image", ("a.png", RED_DOG)), ("image", ("b.png", PLAIN))])
    assert several.status_code == 422 and several.json()["code"] == "no_dog_found"
    assert several.json()["photo"] == 1 and several.json()["detail"].startswith("photo 2 of 2: ")
    r = await add(gw, PLAIN, name="nothing")
    assert r.status_code == 422 and r.json()["code"] == "no_dog_found"
    assert (await add(gw, RED_DOG, dog="1")).json()["code"] == "no_such_dog"
    assert await total(gw) == 1  # nothing stored by the refused adds


async def test_adding_a_dog_of_a_photo_stores_its_box_and_a_breed_guess(gw):
    r = await add(gw, TWO_DOGS, dog="1", name="small")
    assert r.status_code == 201, r.text
    small = r.json()
    assert near(small["payload"]["box"], (10, 30, 50, 80))
    assert small["payload"]["breed_guess"][0] == {"breed": "Irish setter", "p": 0.7}
    again = await add(gw, TWO_DOGS, dog="1", name="small")
    assert again.status_code == 200 and again.json()["id"] == small["id"]  # the same dog of the same photo
    big = await add(gw, TWO_DOGS, breed="beagle")  # dog 0, the larger; a breed given: no guess stored
    assert big.status_code == 201 and big.json()["id"] != small["id"]
    assert "breed_guess" not in big.json()["payload"] and near(big.json()["payload"]["box"], (80, 10, 150, 110))
    assert await total(gw) == 2
    # both dogs are in the one photo: deleting one keeps the photo for the other
    assert (await gw.delete(f"/v1/dogs/{small['id']}")).status_code == 204
    assert (await gw.get(f"/v1/dogs/{big.json()['id']}/image")).status_code == 200


async def test_patch_sets_user_fields_on_the_dog(gw):
    dog = (await add(gw, RED_DOG, name="rex")).json()
    r = await gw.patch(f"/v1/dogs/{dog['id']}", json={"breed": "Irish setter", "color": "red"})
    assert r.status_code == 200, r.text
    assert r.json()["payload"]["breed"] == "Irish setter" and r.json()["payload"]["name"] == "rex"
    assert r.json()["payload"]["color"] == "red"
    found = (await search(gw, RED_DOG, breed="Irish setter")).json()["results"]
    assert [d["id"] for d in found] == [dog["id"]]  # every entry carries the new breed: the filter finds it
    bad = await gw.patch(f"/v1/dogs/{dog['id']}", json={"dog_id": "x"})
    assert bad.status_code == 422
    assert (await gw.patch("/v1/dogs/00000000-0000-0000-0000-000000000000", json={"breed": "x"})).status_code == 404


async def test_a_bulk_job_stores_each_dog_of_a_photo_and_fails_photos_without_one(gw, tmp_path):
    folder = tmp_path / "in" / "mixed"
    folder.mkdir(parents=True)
    (folder / "two.png").write_bytes(TWO_DOGS)
    (folder / "one.png").write_bytes(RED_DOG)
    (folder / "none.jpg").write_bytes(PLAIN)
    for run in range(2):
        job = (await gw.post("/v1/jobs/index", json={"path": str(folder)})).json()
        body = await wait_for(gw, job["id"])
        assert body["state"] == "done", body
        if run == 0:
            assert body["indexed"] == 2 and body["failed"] == 1
            assert [e["reason"] for e in body["errors"]] == ["no dog found in this photo"]
            assert body["errors"][0]["file"].endswith("none.jpg")
        else:  # again: each stored photo is found, nothing doubles
            assert body["indexed"] == 0 and body["already_stored"] == 2
        assert await total(gw) == 3  # two dogs of one photo, one of the other
    dogs = (await gw.get("/v1/dogs")).json()["items"]
    two = sorted((d["payload"]["box"] for d in dogs if d["payload"]["sha256"] == hashlib.sha256(TWO_DOGS).hexdigest()),
                 key=lambda box: box[0])
    assert len(two) == 2 and near(two[0], (10, 30, 50, 80)) and near(two[1], (80, 10, 150, 110))


async def wait_for(client, job_id: str) -> dict:
    import asyncio

    for _ in range(400):
        body = (await client.get(f"/v1/jobs/{job_id}")).json()
        if body["state"] in ("done", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {body}")


async def test_a_bulk_job_adds_the_other_dogs_of_a_photo_whose_first_dog_was_added_alone(gw, tmp_path):
    big = (await add(gw, TWO_DOGS, name="big")).json()  # dog 0 only
    assert await total(gw) == 1
    folder = tmp_path / "in" / "again"
    folder.mkdir(parents=True)
    (folder / "two.png").write_bytes(TWO_DOGS)
    first = await wait_for(gw, (await gw.post("/v1/jobs/index", json={"path": str(folder)})).json()["id"])
    assert first["state"] == "done" and first["indexed"] == 1 and first["already_stored"] == 0, str(first)
    dogs = {d["id"]: d["payload"] for d in (await gw.get("/v1/dogs")).json()["items"]}
    assert len(dogs) == 2 and dogs[big["id"]]["name"] == "big"  # the stored dog kept as it was
    (small,) = (p for id, p in dogs.items() if id != big["id"])
    assert near(small["box"], (10, 30, 50, 80))
    # every dog of the photo stored now: a run again finds them all and embeds nothing
    again = await wait_for(gw, (await gw.post("/v1/jobs/index", json={"path": str(folder)})).json()["id"])
    assert again["indexed"] == 0 and again["already_stored"] == 1, again
    assert await total(gw) == 2


# -- a dog the user marks ------------------------------------------------------------------------------------------

# a blue dog one cell of the blob detector's 16x16 grid: too small for it to box, a dog to whoever looks
SPECK = dogs_photo((BLUE, (200, 150, 240, 180)), size=(640, 480))
SPECK_BOX = "190,140,250,190"


async def test_a_search_for_a_dog_the_user_marked_where_the_detector_found_none(gw):
    red = (await add(gw, RED_DOG, name="red")).json()["id"]
    blue = (await add(gw, BLUE_DOG, name="blue")).json()["id"]
    assert (await search(gw, SPECK)).json()["code"] == "no_dog_found"
    r = await search(gw, SPECK, box=SPECK_BOX)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dog"] == 0 and body["dogs"] == [{"index": 0, "box": [190.0, 140.0, 250.0, 190.0], "score": None,
                                                   "marked": True, "breed_guess": body["breed_guess"]}]
    assert body["breed_guess"][0]["breed"] == "Kerry blue terrier"
    assert [x["id"] for x in body["results"]] == [blue, red]
    # a marked box overrides what the detector boxes: the small red dog of a photo whose largest is blue
    marked = (await search(gw, TWO_DOGS, box="5,25,55,85")).json()
    assert marked["results"][0]["id"] == red and len(marked["dogs"]) == 1 and marked["dogs"][0]["marked"]
    assert (await search(gw, TWO_DOGS)).json()["results"][0]["id"] == blue


@pytest.mark.parametrize(("fields", "reason"), [
    ({"box": "190,140,250"}, "four numbers"),
    ({"box": "250,140,190,190"}, "x0 < x1"),
    ({"box": "630,470,700,500"}, "holds under 16x16 pixels of the 640x480 photo"),
    ({"box": "0,0,99999,99999"}, "reaches past the 640x480 photo"),  # was clipped to the whole photo
    ({"box": SPECK_BOX, "dog": "1"}, "the marked box is the photo's one dog"),
])
async def test_a_box_that_is_not_a_dog_of_the_photo_is_a_422_and_stores_nothing(gw, fields, reason):
    for r in (await search(gw, SPECK, **fields), await add(gw, SPECK, name="x", **fields)):
        assert r.status_code == 422 and r.json()["code"] == "bad_box" and reason in r.json()["detail"], r.text
    assert await total(gw) == 0


async def test_a_box_marks_the_dog_of_one_photo_not_of_several(gw):
    r = await gw.post("/v1/search", files=[("image", ("a.png", SPECK)), ("image", ("b.png", BLUE_DOG))],
                      data={"box": SPECK_BOX})
    assert r.status_code == 422 and "2 photos were sent with it" in r.json()["detail"], r.text


async def test_adding_a_dog_the_user_marked_stores_its_box_once_and_another_box_as_another_dog(gw):
    assert (await add(gw, SPECK, name="speck")).json()["code"] == "no_dog_found"
    r = await add(gw, SPECK, name="speck", box=SPECK_BOX)
    assert r.status_code == 201, r.text
    dog = r.json()
    assert dog["payload"]["box"] == [190.0, 140.0, 250.0, 190.0] and dog["payload"]["marked"] is True
    assert dog["payload"]["breed_guess"][0]["breed"] == "Kerry blue terrier"
    again = await add(gw, SPECK, name="speck", box="190.2,140,250,189.8")  # the same box to the pixel
    assert again.status_code == 200 and again.json()["id"] == dog["id"]
    other = await add(gw, SPECK, name="grey", box="0,0,640,480")
    assert other.status_code == 201 and other.json()["id"] != dog["id"]
    assert await total(gw) == 2
    found = (await search(gw, BLUE_DOG)).json()["results"]
    assert found[0]["id"] == dog["id"] and found[0]["box"] == [190.0, 140.0, 250.0, 190.0]
    # another photo of the dog, marked too
    more = await gw.post(f"/v1/dogs/{dog['id']}/photos", files={"image": ("b.png", TWO_DOGS)},
                         data={"box": "75,5,155,115"})
    assert more.status_code == 201, more.text
    assert len(more.json()["photos"]) == 2 and await total(gw) == 2
    twice = await gw.post(f"/v1/dogs/{dog['id']}/photos", files={"image": ("b.png", TWO_DOGS)},
                          data={"box": "75,5,155,115"})
    assert twice.status_code == 200


async def test_a_dogs_pose_is_of_its_own_box_and_a_searchs_of_the_dog_searched(tmp_path):
    """The pose service poses the box the gallery knows (a detected one, or one the user marked) rather than the
    photo's likeliest dog: in a photo of two, the small dog's pose is the small dog's."""
    from tests.fakes import fake_pose_pipeline

    app = fake_all_in_one(tmp_path / "data", detector=True, pose_factory=fake_pose_pipeline)
    async with serving(app) as gw:
        small = (await add(gw, TWO_DOGS, dog="1", name="small")).json()
        [posed] = (await gw.get(f"/v1/dogs/{small['id']}/pose")).json()["dogs"]
        assert posed["box"] == small["payload"]["box"] and posed["score"] == 1.0
        speck = (await add(gw, SPECK, box=SPECK_BOX, name="speck")).json()
        [posed] = (await gw.get(f"/v1/dogs/{speck['id']}/pose")).json()["dogs"]
        assert posed["box"] == [190.0, 140.0, 250.0, 190.0]
        body = (await search(gw, TWO_DOGS, dog="1", pose="true")).json()
        [query] = body["query_pose"]["dogs"]
        assert query["box"] == body["dogs"][1]["box"] and near(query["box"], (10, 30, 50, 80))
        assert all(len(r["pose"]["dogs"]) == 1 for r in body["results"])
        marked = (await search(gw, SPECK, box=SPECK_BOX, pose="true")).json()
        assert [d["box"] for d in marked["query_pose"]["dogs"]] == [[190.0, 140.0, 250.0, 190.0]]
        # any photo's pose, in a box given: that dog alone
        r = await gw.post("/v1/pose", files={"image": ("p.png", TWO_DOGS)}, data={"box": "10,30,50,80"})
        assert [d["box"] for d in r.json()["dogs"]] == [[10.0, 30.0, 50.0, 80.0]]
        assert (await gw.post("/v1/pose", files={"image": ("p.png", TWO_DOGS)}, data={"box": "x"})).status_code == 422


@pytest.mark.parametrize("require_dog", [True, False])
async def test_any_photos_pose_is_refused_where_a_search_finds_no_dog(tmp_path, require_dog):
    """A photo without a dog was posed whole, a dog's skeleton drawn on whatever it shows: it is refused as a search
    refuses it, with what it seems to show, unless the operator turned the dog check off (its whole photo is then
    the dog, as in a search). A box marked in it says where the dog is."""
    from tests.fakes import fake_pose_pipeline

    app = fake_all_in_one(tmp_path / "data", detector=True, pose_factory=fake_pose_pipeline,
                          gateway_options={"require_dog": require_dog})
    async with serving(app) as gw:
        for render in ("false", "true"):
            r = await gw.post("/v1/pose", files={"image": ("p.jpg", PLAIN)}, data={"render": render})
            if require_dog:
                assert r.status_code == 422 and r.json()["code"] == "no_dog_found", r.text
                assert r.json()["detail"] == "no dog found in this photo"
                assert r.json()["seems"] == (await search(gw, PLAIN)).json()["seems"] and r.json()["seems"]
            else:
                assert r.status_code == 200, r.text
        if not require_dog:
            [whole] = (await gw.post("/v1/pose", files={"image": ("p.jpg", PLAIN)})).json()["dogs"]
            assert whole["whole_photo"] and whole["box"] == [0, 0, 160, 120]
        r = await gw.post("/v1/pose", files={"image": ("p.jpg", PLAIN)}, data={"box": "40,30,120,90"})
        assert r.status_code == 200 and [d["given"] for d in r.json()["dogs"]] == [True]
        [dog] = (await gw.post("/v1/pose", files={"image": ("p.png", RED_DOG)})).json()["dogs"]
        assert near(dog["box"], (60, 30, 110, 90), tolerance=2) and not dog["whole_photo"]


async def test_detect_with_a_box_gives_the_marked_dogs_breed_guesses(gw):
    r = await gw.post("/v1/detect", files={"image": ("p.png", SPECK)}, data={"box": SPECK_BOX})
    assert r.status_code == 200, r.text
    [dog] = r.json()["dogs"]
    assert dog["marked"] and dog["box"] == [190.0, 140.0, 250.0, 190.0]
    assert dog["breed_guess"][0]["breed"] == "Kerry blue terrier"
    bad = await gw.post("/v1/detect", files={"image": ("p.png", SPECK)}, data={"box": "0,0,5,5"})
    assert bad.status_code == 422 and bad.json()["code"] == "bad_box"


async def test_a_box_field_beyond_four_numbers_length_is_a_422(gw):
    r = await search(gw, SPECK, box="1" * 10_000 + ",0,100,100")
    assert r.status_code == 422 and "box" in r.text, r.text


async def test_the_owner_marks_where_the_dog_is_in_a_stored_photo(gw):
    """The detector boxed the large blue dog; the dog meant is the small red one: marked, the photo is embedded from
    that box, which it keeps, with its breed guess; the photo added again is still this dog."""
    red = (await add(gw, RED_DOG, name="other red")).json()["id"]
    dog = (await add(gw, TWO_DOGS, name="mine")).json()
    assert near(dog["payload"]["box"], (80, 10, 150, 110))
    r = await gw.put(f"/v1/dogs/{dog['id']}/photos/{dog['id']}/box", json={"box": "5,25,55,85"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["payload"]["box"] == [5.0, 25.0, 55.0, 85.0] and body["payload"]["marked"] is True
    assert body["payload"]["breed_guess"][0]["breed"] == "Irish setter" and body["payload"]["name"] == "mine"
    # searched with a red dog, it comes first now, next to the other red dog, far ahead of any blue one
    found = (await search(gw, RED_DOG)).json()["results"]
    assert {found[0]["id"], found[1]["id"]} == {dog["id"], red}
    assert found[0]["box"] == [5.0, 25.0, 55.0, 85.0] or found[1]["box"] == [5.0, 25.0, 55.0, 85.0]
    again = await add(gw, TWO_DOGS, name="mine")
    assert again.status_code == 200 and again.json()["id"] == dog["id"]
    assert await total(gw) == 2
    for box, status in (("5,25,10,30", 422), ("x", 422), ("0,0,99999,99999", 422), ("-500,-500,99999,99999", 422)):
        r = await gw.put(f"/v1/dogs/{dog['id']}/photos/{dog['id']}/box", json={"box": box})
        assert r.status_code == status and r.json()["code"] == "bad_box", r.text
    assert "reaches past the 160x120 photo" in r.json()["detail"]
    assert (await gw.put(f"/v1/dogs/{dog['id']}/photos/{red}/box", json={"box": "5,25,55,85"})).status_code == 404
    assert (await gw.put(f"/v1/dogs/{dog['id']}/photos/{dog['id']}/box", json={"box": "5,25,55,85", "x": 1})
            ).status_code == 422
