"""/v1/search and /v1/dogs/{id}/similar."""
from __future__ import annotations

import asyncio
import io

import pytest

from tests.gateway.helpers import BLUE, DARK_RED, GREEN, RED, add, search, total
from tests.images import solid


async def test_search_returns_the_closest_dogs_best_first(gateway):
    ids = {}
    for name, color in (("red", RED), ("green", GREEN), ("blue", BLUE)):
        ids[name] = (await add(gateway, solid(color), name=name, breed=f"{name}-breed")).json()["id"]

    r = await search(gateway, solid(DARK_RED), k=3)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [hit["id"] for hit in body["results"]][0] == ids["red"]
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    assert body["results"][0]["payload"]["breed"] == "red-breed"
    assert body["took_ms"] >= 0

    only_blue = (await search(gateway, solid(DARK_RED), breed="blue-breed")).json()["results"]
    assert [hit["id"] for hit in only_blue] == [ids["blue"]]
    by_filter = (await search(gateway, solid(DARK_RED), filter='{"name": ["green", "blue"]}')).json()["results"]
    assert {hit["id"] for hit in by_filter} == {ids["green"], ids["blue"]}
    assert len((await search(gateway, solid(RED), k=1)).json()["results"]) == 1


async def test_more_like_this_excludes_the_dog_itself(gateway):
    red = (await add(gateway, solid(RED))).json()["id"]
    dark = (await add(gateway, solid(DARK_RED))).json()["id"]
    await add(gateway, solid(BLUE))
    r = await gateway.get(f"/v1/dogs/{red}/similar", params={"k": 5})
    assert r.status_code == 200
    ids = [hit["id"] for hit in r.json()["results"]]
    assert red not in ids and ids[0] == dark and len(ids) == 2
    missing = "00000000-0000-0000-0000-000000000000"
    assert (await gateway.get(f"/v1/dogs/{missing}/similar")).status_code == 404


@pytest.mark.parametrize("k", ["0", "101", "ten"])
async def test_k_out_of_range_is_422(gateway, k):
    r = await search(gateway, solid(RED), k=k)
    assert r.status_code == 422 and "k" in str(r.json()["detail"])


async def test_ten_clients_at_once_get_correct_answers_and_one_model_load(gateway, fake_model):
    colors = [(i * 25, 250 - i * 25, 128) for i in range(10)]
    added = await asyncio.gather(*(add(gateway, solid(c), name=str(i)) for i, c in enumerate(colors)))
    assert all(r.status_code == 201 for r in added)
    answers = await asyncio.gather(*(search(gateway, solid(c), k=1) for c in colors))
    for i, answer in enumerate(answers):
        assert answer.json()["results"][0]["payload"]["name"] == str(i)
    assert await total(gateway) == 10


async def test_a_preview_is_an_upright_jpeg_without_metadata_and_stores_nothing(gateway):
    """What a browser cannot show (a phone's HEIC outside Safari) it asks the gateway for as a JPEG."""
    from pathlib import Path

    from PIL import Image

    from tests.images import encode

    heic = (Path(__file__).resolve().parents[1] / "fixtures" / "phone" / "beagle.heic").read_bytes()
    shown = await gateway.post("/v1/preview", files={"image": ("IMG_0001.HEIC", heic)})
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert shown.headers["cache-control"] == "no-store" and b"Secretville" not in shown.content
    with Image.open(io.BytesIO(shown.content)) as jpeg:
        assert jpeg.size == (213, 160) and not jpeg.getexif()  # upright; smaller photos keep their size
    large = encode(Image.new("RGB", (1200, 800), (30, 90, 200)), "JPEG")
    with Image.open(io.BytesIO((await gateway.post("/v1/preview", files={"image": ("l.jpg", large)})).content)) as jpeg:
        assert jpeg.size == (1024, 683)
    refused = await gateway.post("/v1/preview", files={"image": ("x.heic", heic[:2000])})
    assert refused.status_code == 422 and "truncated or corrupt" in refused.json()["detail"]
    assert await total(gateway) == 0


def test_a_score_is_a_cosine_however_float32_rounds_it():
    """The same photo's unit vectors in float32 may dot to 1.0000001: shown as 1."""
    from dogsearch.gallery.records import Dog, Match
    from dogsearch.services.gateway.routers.search import result
    from dogsearch.services.gateway.samedog import Judged

    dog = Dog.from_entry({"id": "d1", "payload": {"dog_id": "d1", "photo_id": "p1", "format": "JPEG"}})
    shown = result(Match(dog, 1.0000001192092896), Judged([None], [None], None, None), 0)
    assert shown.score == 1.0 and result(Match(dog, 0.93), Judged([None], [None], None, None), 0).score == 0.93
