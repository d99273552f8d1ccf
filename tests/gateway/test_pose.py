import io

import pytest
from PIL import Image, ImageDraw

from dogsearch.models.pose import keypoints as K
from dogsearch.pose.render import render_png
from dogsearch.pose.rerank import proportion_gap, rerank
from dogsearch.services.pose.settings import PoseSettings
from tests.fakes import FakePoseModel, fake_all_in_one, fake_pose_pipeline, serving
from tests.images import encode


def _photo(colour, box=(40, 30, 159, 89)) -> bytes:
    im = Image.new("RGB", (200, 120), (255, 255, 255))
    ImageDraw.Draw(im).rectangle(box, fill=colour)
    return encode(im, "PNG")


@pytest.fixture
async def gw(tmp_path, fake_model):

    app = fake_all_in_one(tmp_path / "data", fake_model, pose_factory=fake_pose_pipeline)
    async with serving(app) as client:
        yield client


async def _add(client, data: bytes, name: str) -> str:
    response = await client.post("/v1/dogs", files={"image": ("d.png", data, "image/png")}, data={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_stored_dog_pose_and_overlay(gw):
    dog_id = await _add(gw, _photo((120, 80, 40)), "rex")
    body = (await gw.get(f"/v1/dogs/{dog_id}/pose")).json()
    assert body["model"] == "test-standing-template" and len(body["dogs"]) == 1
    assert len(body["dogs"][0]["keypoints"]) == K.NUM_AP10K
    png = await gw.get(f"/v1/dogs/{dog_id}/pose.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (200, 120)
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await gw.get(f"/v1/dogs/{missing}/pose")).status_code == 404
    assert (await gw.get("/v1/dogs/not-an-id/pose")).status_code == 422


@pytest.fixture
async def gw_boxing(tmp_path, fake_model):
    """The gateway whose embedder boxes the dogs (the blob detector): dogs stored in their boxes, not whole."""
    app = fake_all_in_one(tmp_path / "data", fake_model, detector=True, pose_factory=fake_pose_pipeline)
    async with serving(app) as client:
        yield client


async def test_the_pose_of_one_of_a_dogs_photos_and_of_its_cover_once_its_first_photo_is_gone(gw_boxing):
    gw = gw_boxing
    first, second = _photo((120, 80, 40)), _photo((125, 85, 45), box=(10, 10, 90, 110))
    dog_id = await _add(gw, first, "rex")
    added = await gw.post(f"/v1/dogs/{dog_id}/photos", files={"image": ("e.png", second, "image/png")})
    photo = added.json()["photo_id"]
    cover_box = (await gw.get(f"/v1/dogs/{dog_id}/pose")).json()["dogs"][0]["box"]
    other_box = (await gw.get(f"/v1/dogs/{dog_id}/pose", params={"photo": photo})).json()["dogs"][0]["box"]
    assert cover_box != other_box and other_box[2] <= 100  # the second photo's dog, on the left
    # The dog's first photo removed: the cover is the second one, whose file is not named by the dog's id.
    assert (await gw.delete(f"/v1/dogs/{dog_id}/photos/{dog_id}")).status_code == 204
    png = await gw.get(f"/v1/dogs/{dog_id}/pose.png")
    assert png.status_code == 200 and png.headers["cache-control"] == "no-cache"
    assert (await gw.get(f"/v1/dogs/{dog_id}/pose")).json()["dogs"][0]["box"] == other_box
    gone = await gw.get(f"/v1/dogs/{dog_id}/pose.png", params={"photo": dog_id})
    assert gone.status_code == 404 and "no photo" in gone.json()["detail"]
    assert (await gw.get(f"/v1/dogs/{dog_id}/pose", params={"photo": "x"})).status_code == 422


async def test_the_overlay_of_a_large_jpeg_is_drawn_on_the_whole_photo(gw):
    # Large enough that the gateway decodes it shrunk for its thumbnail: the keypoints are the full photo's.
    im = Image.open(io.BytesIO(_photo((120, 80, 40)))).resize((1200, 720))
    response = await gw.post("/v1/dogs", files={"image": ("d.jpg", encode(im, "JPEG"), "image/jpeg")})
    payload = response.json()["payload"]
    assert response.status_code == 201 and (payload["width"], payload["height"]) == (1200, 720)
    png = await gw.get(f"/v1/dogs/{response.json()['id']}/pose.png")
    assert Image.open(io.BytesIO(png.content)).size == (1200, 720)


async def test_pose_of_an_uploaded_photo(gw):
    files = {"image": ("q.png", _photo((10, 200, 10)), "image/png")}
    body = (await gw.post("/v1/pose", files=files)).json()
    assert body["dogs"][0]["analysis"]["posture"]["label"] == "standing"
    rendered = await gw.post("/v1/pose", files=files, data={"render": "true"})
    assert rendered.headers["content-type"] == "image/png"
    bad = await gw.post("/v1/pose", files={"image": ("q.png", b"nope", "image/png")})
    assert bad.status_code == 415


async def test_search_with_pose_and_rerank(gw):
    for i, colour in enumerate([(120, 80, 40), (125, 85, 45), (20, 20, 200)]):
        await _add(gw, _photo(colour), f"dog{i}")
    files = {"image": ("q.png", _photo((122, 82, 42)), "image/png")}
    plain = (await gw.post("/v1/search", files=files, data={"k": "2"})).json()
    assert "query_pose" not in plain or plain["query_pose"] is None
    assert all(r.get("pose") is None for r in plain["results"])

    posed = (await gw.post("/v1/search", files=files, data={"k": "2", "pose": "true"})).json()
    assert posed["query_pose"]["dogs"][0]["keypoints"][0]["name"] == "left_eye"
    assert [r["id"] for r in posed["results"]] == [r["id"] for r in plain["results"]]
    assert all(r["pose"]["dogs"] for r in posed["results"])

    reranked = (await gw.post("/v1/search", files=files, data={"k": "2", "rerank": "pose"})).json()
    assert len(reranked["results"]) == 2 and all(r["rerank_score"] is not None for r in reranked["results"])
    bad = await gw.post("/v1/search", files=files, data={"rerank": "colour"})
    assert bad.status_code == 422


def _pose_with(leg: float, head: float, conf: float = 0.9) -> dict:
    measure = lambda v: {"value": v, "confidence": conf}  # noqa: E731
    return {"dogs": [{"box": [0, 0, 10, 10], "analysis": {"proportions": {
        "leg_to_body": measure(leg), "head_to_body": measure(head), "tail_to_body": measure(None)}}}]}


def test_rerank_moves_the_dog_with_closer_proportions_up():
    query = _pose_with(0.8, 0.5)
    hits = [{"id": "a", "score": 0.90}, {"id": "b", "score": 0.88}]
    poses = [_pose_with(0.4, 0.5), _pose_with(0.8, 0.5)]
    assert proportion_gap(query, poses[1]) == 0.0
    assert proportion_gap(query, poses[0]) == pytest.approx(abs(__import__("math").log(2)) / 2)
    scored = [(hit["score"], hit) for hit in hits]
    assert [hit["id"] for _, hit, _ in rerank(query, scored, poses, weight=0.1)] == ["b", "a"]
    # weight 0: the embedder's order
    assert [hit["id"] for _, hit, _ in rerank(query, scored, poses, weight=0.0)] == ["a", "b"]
    # a whole photo posed for want of a box (a close-up of a face, say) has no proportions to hold against it
    guessed = _pose_with(0.4, 0.5)
    guessed["dogs"][0]["whole_photo"] = True
    assert proportion_gap(query, guessed) == 0.0 and proportion_gap(guessed, poses[0]) == 0.0


def test_fake_pose_model_is_deterministic():
    model = FakePoseModel()
    a = model.predict(Image.new("RGB", (10, 10)), [[0, 0, 10, 10]])[0]
    b = fake_pose_pipeline().model.predict(Image.new("RGB", (10, 10)), [[0, 0, 10, 10]])[0]
    assert (a.points == b.points).all()


async def test_a_search_with_poses_answers_without_them_when_the_pose_service_fails(tmp_path, fake_model):
    def broken():
        raise RuntimeError("the pose model's weights are gone")  # every call to the pose service: a 500

    app = fake_all_in_one(tmp_path / "data", fake_model, pose_factory=broken)
    async with serving(app) as client:
        for i, colour in enumerate([(120, 80, 40), (20, 20, 200)]):
            await _add(client, _photo(colour), f"dog{i}")
        files = {"image": ("q.png", _photo((122, 82, 42)), "image/png")}
        plain = (await client.post("/v1/search", files=files, data={"k": "2"})).json()
        for fields in ({"pose": "true"}, {"rerank": "pose"}):
            answer = await client.post("/v1/search", files=files, data={"k": "2", **fields})
            assert answer.status_code == 200, answer.text  # was the whole search's 503
            body = answer.json()
            assert body["pose_error"].startswith("pose") and body["query_pose"] is None
            assert [r["id"] for r in body["results"]] == [r["id"] for r in plain["results"]]
            assert all(r.get("pose") is None and r.get("rerank_score") is None for r in body["results"])
        assert plain["pose_error"] is None



class _SeesNoDog:
    """The pose service's detector finding no dog in any photo, its classifier none in the whole photo either: the
    pose service refuses every photo sent without boxes."""

    name = "test-sees-no-dog"

    def detect_seen(self, images):
        from dogsearch.models.dogclass import Classification, Label

        return [[] for _ in images], [Classification(0.03, (), (Label("French horn", 0.6),)) for _ in images]


def _refusing_pose():
    from dogsearch.pose.pipeline import PosePipeline

    return PosePipeline(FakePoseModel(), _SeesNoDog())


async def test_dogs_the_gateway_took_whole_are_posed_whole_where_the_pose_service_sees_no_dog(tmp_path, fake_model):
    """Dogs the embedder takes whole (no detector here, as require_dog off or a close-up the classifier calls a dog
    would): the gateway sends the whole photo as the dog's box, so the pose service, which would refuse the photo for
    want of a dog it finds itself, poses it, in a search with poses, a stored dog's pose and overlay, and any
    photo's pose (before, each was the pose service's 422)."""
    app = fake_all_in_one(tmp_path / "data", fake_model, pose_factory=_refusing_pose)
    async with serving(app) as client:
        ids = [await _add(client, _photo(colour), f"dog{i}") for i, colour in enumerate([(120, 80, 40), (20, 20, 200)])]
        files = {"image": ("q.png", _photo((122, 82, 42)), "image/png")}
        for fields in ({"pose": "true"}, {"rerank": "pose"}):
            r = await client.post("/v1/search", files=files, data={"k": "2", **fields})
            assert r.status_code == 200 and r.json()["pose_error"] is None, r.text
        searched = (await client.post("/v1/search", files=files, data={"pose": "true"})).json()
        poses = [searched["query_pose"], *(result["pose"] for result in searched["results"])]
        poses += [(await client.get(f"/v1/dogs/{dog}/pose")).json() for dog in ids]
        poses.append((await client.post("/v1/pose", files=files)).json())
        for pose in poses:
            [dog] = pose["dogs"]
            assert dog["box"] == [0, 0, 200, 120] and dog["whole_photo"] and dog["given"], pose
        assert (await client.get(f"/v1/dogs/{ids[0]}/pose.png")).status_code == 200
        assert (await client.post("/v1/pose", files=files, data={"render": "true"})).status_code == 200


async def test_the_pose_of_any_photo_sends_the_dogs_a_search_finds_or_refuses_a_photo_without_one(tmp_path,
                                                                                                  fake_model):
    """The embedder's detector boxes two dogs: both are posed in its boxes, the pose service's detector not asked (it
    finds none here). A photo without a dog is refused by the gateway, saying what it seems to show; with
    DOGSEARCH_GATEWAY_REQUIRE_DOG=false it is posed whole, as a search takes it."""
    two = Image.new("RGB", (200, 120), (255, 255, 255))
    ImageDraw.Draw(two).rectangle((10, 10, 70, 100), fill=(120, 80, 40))
    ImageDraw.Draw(two).rectangle((120, 20, 190, 110), fill=(20, 20, 200))
    blank = encode(Image.new("RGB", (200, 120), (255, 255, 255)), "PNG")
    for require_dog in (True, False):
        app = fake_all_in_one(tmp_path / f"data-{require_dog}", fake_model, detector=True,
                              pose_factory=_refusing_pose, gateway_options={"require_dog": require_dog})
        async with serving(app) as client:
            found = (await client.post("/v1/detect", files={"image": ("t.png", encode(two, "PNG"))})).json()
            posed = await client.post("/v1/pose", files={"image": ("t.png", encode(two, "PNG"))})
            assert posed.status_code == 200, posed.text
            assert len(found["dogs"]) == 2
            assert [d["box"] for d in posed.json()["dogs"]] == [d["box"] for d in found["dogs"]]
            none = await client.post("/v1/pose", files={"image": ("b.png", blank)})
            if require_dog:
                assert none.status_code == 422 and none.json()["code"] == "no_dog_found", none.text
                assert none.json()["seems"][0]["label"] == "golf ball"  # the gateway's classifier's words
            else:
                assert none.status_code == 200 and none.json()["dogs"][0]["box"] == [0, 0, 200, 120], none.text


async def test_the_pose_of_any_photo_shows_the_scores_of_the_detector_that_found_its_dogs(tmp_path, fake_model):
    """The dogs the gateway's check finds go to the pose service with their detector's scores (0.9 here): the answer
    and the overlay show them, as for dogs the pose service finds itself (before, each came back given, scored 1, and
    the overlay printed no score). A box the caller marks is still given, scored 1."""
    two = Image.new("RGB", (200, 120), (255, 255, 255))
    ImageDraw.Draw(two).rectangle((10, 10, 70, 100), fill=(120, 80, 40))
    ImageDraw.Draw(two).rectangle((120, 20, 190, 110), fill=(20, 20, 200))
    files = {"image": ("t.png", encode(two, "PNG"))}
    app = fake_all_in_one(tmp_path / "data", fake_model, detector=True, pose_factory=_refusing_pose)
    async with serving(app) as client:
        found = (await client.post("/v1/detect", files=files)).json()["dogs"]
        dogs = (await client.post("/v1/pose", files=files)).json()["dogs"]
        drawn = await client.post("/v1/pose", files=files, data={"render": "true"})
        marked = (await client.post("/v1/pose", files=files, data={"box": "10,10,71,101"})).json()["dogs"]
    assert [(d["box"], d["score"], d["given"]) for d in dogs] == [(d["box"], 0.9, False) for d in found]
    assert [(d["score"], d["given"]) for d in marked] == [(1.0, True)]
    threshold = PoseSettings().keypoint_threshold
    scored, unscored = (Image.open(io.BytesIO(render_png(two, shown, threshold))).tobytes()
                        for shown in (dogs, [d | {"given": True} for d in dogs]))
    assert Image.open(io.BytesIO(drawn.content)).tobytes() == scored != unscored  # the scores printed


async def test_a_search_with_poses_answers_without_them_when_the_pose_service_refuses_a_photo(tmp_path, fake_model):
    """A pose service that takes smaller photos than the gateway (413): the search answers without poses, saying
    why, as when the pose service is down (before, the whole search was the pose service's refusal)."""
    big = encode(Image.effect_noise((300, 300), 60).convert("RGB"), "PNG")
    app = fake_all_in_one(tmp_path / "data", fake_model, pose_factory=fake_pose_pipeline,
                          pose_settings=PoseSettings(max_image_bytes=len(big) - 1))
    async with serving(app) as client:
        await _add(client, _photo((120, 80, 40)), "rex")
        r = await client.post("/v1/search", files={"image": ("q.png", big, "image/png")}, data={"pose": "true"})
        assert r.status_code == 200, r.text
        assert "too large" in r.json()["pose_error"] and r.json()["query_pose"] is None
        assert len(r.json()["results"]) == 1


@pytest.mark.real_model
async def test_real_photos_without_a_dog_get_no_dog_pose_but_what_they_seem_to_show(tmp_path):
    """The shipped models: a truck in a street and a man holding a French horn were posed whole, a dog's skeleton
    drawn over them (the pose service's fallback where its detector finds no dog). They are refused as a search
    refuses them, saying what they seem to show; a dog's photo is posed as before, and a close-up posed whole."""
    from dogsearch.services.allinone import create_all_in_one
    from tests.conftest import FIXTURES

    not_dogs = {"French horn": FIXTURES / "not-dogs" / "n03394916" / "ILSVRC2012_val_00003759.jpg",
                "garbage truck": FIXTURES / "not-dogs" / "n03417042" / "ILSVRC2012_val_00004119.jpg"}
    async with serving(create_all_in_one(tmp_path / "data")) as client:
        for label, path in not_dogs.items():
            files = {"image": (path.name, path.read_bytes(), "image/jpeg")}
            searched = (await client.post("/v1/search", files=files)).json()
            for render in ("false", "true"):
                r = await client.post("/v1/pose", files=files, data={"render": render})
                assert r.status_code == 422 and r.json()["code"] == "no_dog_found", (path.name, r.text)
                assert r.json()["seems"] == searched["seems"] and r.json()["seems"][0]["label"] == label
        beagle = FIXTURES / "dogs" / "n02088364" / "ILSVRC2012_val_00005922.jpg"
        posed = await client.post("/v1/pose", files={"image": (beagle.name, beagle.read_bytes(), "image/jpeg")})
        assert posed.status_code == 200 and posed.json()["dogs"][0]["whole_photo"] is False, posed.text
        # a close-up the embedder takes whole (its classifier calls the photo a dog): a search of it, and the stored
        # dog, posed whole
        await client.post("/v1/dogs", files={"image": (beagle.name, beagle.read_bytes(), "image/jpeg")})
        dingo = (FIXTURES / "close-up" / "ILSVRC2012_val_00041341.jpg").read_bytes()
        searched = await client.post("/v1/search", files={"image": ("c.jpg", dingo)}, data={"pose": "true"})
        assert searched.status_code == 200 and searched.json()["pose_error"] is None, searched.text
        assert [d["whole_photo"] for d in searched.json()["query_pose"]["dogs"]] == [True]
        stored = (await client.post("/v1/dogs", files={"image": ("c.jpg", dingo)})).json()["id"]
        assert [d["whole_photo"] for d in (await client.get(f"/v1/dogs/{stored}/pose")).json()["dogs"]] == [True]
