"""A data directory written before dogs had ids of their own (one entry per photo, the ids all the photo's) keeps
working: the gateway upgrades its entries at start-up, through the same contract on either engine, and every dog
keeps its id, its photo and its place in searches."""
from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

import httpx
from PIL import Image

from dogsearch.core.images import decode_image
from dogsearch.gallery.layout import upgrade
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import photo_id, sha256_hex
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.services.layout import DataLayout
from dogsearch.services.search.app import create_app as create_search
from dogsearch.services.search.client import SearchClient
from dogsearch.services.search.settings import SearchSettings
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.images import solid

COLORS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def write_old_layout(layout: DataLayout) -> dict[str, str]:
    """What the release before wrote for three uploads: a point per photo under the photo's id, its payload the
    user's fields and the photo's facts, the photo in the photo store under the same id. {colour: id}."""
    model, photos, ids = ColorGridModel(), PhotoStore(layout.photos), {}
    with EdgeStore(layout.vectors, "dogs") as store:
        store.ensure_collection(model.dim, model.model_id, {"breed": "keyword", "name": "keyword"})
        for name, color in COLORS.items():
            data = solid(color)
            dog = photo_id(sha256_hex(data))
            vector = model.embed_images([decode_image(data, max_bytes=10**6, max_pixels=10**6).image])[0]
            payload = {"name": name, "breed": "mutt", "sha256": sha256_hex(data), "format": "JPEG", "width": 64,
                       "height": 48, "bytes": len(data), "model": model.model_id,
                       "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
            store.upsert([Point(dog, vector.tolist(), payload)])
            photos.save(dog, "JPEG", data)
            ids[name] = dog
    return ids


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(200):
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.05)
    raise AssertionError((await client.get("/readyz")).json())


async def test_an_old_data_directory_is_upgraded_and_keeps_its_dogs(tmp_path):
    layout = DataLayout(tmp_path / "data")
    ids = write_old_layout(layout)
    app = fake_all_in_one(layout.root)
    async with serving(app) as client:
        await wait_ready(client)
        listed = (await client.get("/v1/dogs", params={"limit": 10})).json()
        assert listed["total"] == 3 and sorted(d["id"] for d in listed["items"]) == sorted(ids.values())
        assert all(set(d["payload"]) >= {"name", "breed", "sha256"} and "dog_id" not in d["payload"]
                   for d in listed["items"])
        red = (await client.get(f"/v1/dogs/{ids['red']}")).json()
        assert red["payload"]["name"] == "red"
        photo = await client.get(red["image_url"])
        assert photo.status_code == 200 and Image.open(io.BytesIO(photo.content)).size == (64, 48)
        hits = (await client.post("/v1/search", files={"image": ("q.jpg", solid((190, 40, 40)))},
                                  data={"k": "3"})).json()["results"]
        assert [h["id"] for h in hits][0] == ids["red"] and len(hits) == 3
        similar = (await client.get(f"/v1/dogs/{ids['red']}/similar", params={"k": 5})).json()["results"]
        assert sorted(h["id"] for h in similar) == sorted([ids["green"], ids["blue"]])
        # A new photo is stored in the new layout beside the upgraded ones.
        added = await client.post("/v1/dogs", files={"image": ("n.jpg", solid((120, 120, 30)))},
                                  data={"name": "new"})
        assert added.status_code == 201
        assert (await client.delete(f"/v1/dogs/{ids['green']}")).status_code == 204
        assert (await client.get("/v1/dogs")).json()["total"] == 3
    assert not PhotoStore(layout.photos).original(ids["green"], "JPEG").exists()
    with EdgeStore(layout.vectors, "dogs") as store:
        points, _ = store.scroll(10)
    assert len(points) == 3
    for point in points:  # every entry names its dog and photo now; the upgraded ones by their own id
        assert point.payload["cover"] is True and "box" not in point.payload  # the whole photo
        assert point.payload["dog_id"] == point.payload["photo_id"] == point.id


async def test_the_upgrade_goes_through_the_search_service_and_is_idempotent(tmp_path):
    layout = DataLayout(tmp_path / "data")
    write_old_layout(layout)
    search_app = create_search(SearchSettings(data_dir=layout.vectors))
    async with search_app.router.lifespan_context(search_app):
        index = SearchClient("http://search", app=search_app)
        # the layout, breeds, names, the dogs' dates
        assert await upgrade(index) == 3 + 3 + 3 + 3
        assert await upgrade(index) == 0
        assert await index.count({"cover": True}) == 3 and await index.count({"$empty": ["dog_id"]}) == 0
        # each dog dated by its photo, to the second, for the list's order (its index made on the old collection)
        listed = (await index.scroll(10, None, {"cover": True}, order_by="-dog_created_at"))["points"]
        assert len(listed) == 3 and len({p["payload"]["dog_created_at"] for p in listed}) == 3
        assert all(p["payload"]["dog_created_at"][:19] == p["payload"]["created_at"][:19] for p in listed)
        # breeds and names stored before they were matched by key are found as new ones are
        assert await index.count({"breed_key": "mutt"}) == 3 and await index.count({"name_key": "red"}) == 1
        await index.aclose()


async def test_an_empty_data_directory_needs_no_upgrade(tmp_path):
    search_app = create_search(SearchSettings(data_dir=tmp_path / "vectors"))
    async with search_app.router.lifespan_context(search_app):
        index = SearchClient("http://search", app=search_app)
        assert await upgrade(index) == 0
        await index.aclose()
