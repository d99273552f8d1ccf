"""The storage model behind the API: a dog may have several entries (photos), a photo may show several dogs. Until
the API adds them (a photo added to a dog, the dogs a detector finds in a photo), entries are written here the way
those features will write them; the gallery must already read, rank and delete dogs through them right."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from dogsearch.gallery.expansion import Expansion, expand
from dogsearch.gallery.records import entry_id, photo_id, sha256_hex
from tests.images import solid

RED, NEAR_RED, BLUE = solid((200, 30, 30)), solid((205, 35, 35)), solid((30, 30, 200))


async def add_entry(gallery, dog: str, data: bytes, index: int = 0, cover: bool = False) -> str:
    """Another entry of `dog`: the `index`-th dog of the photo `data`, as later features will store one."""
    _, vectors = await gallery.embedder.embed([data])
    photo = photo_id(sha256_hex(data))
    fields = (await gallery.dog(dog)).payload
    payload = {**fields, "dog_id": dog, "cover": cover, "photo_id": photo, "sha256": sha256_hex(data)}
    if index:
        payload["box"] = [0, 0, 32, 24]
    entry = entry_id(photo, index)
    gallery.photos.save(photo, "JPEG", data)
    await gallery.index.upsert([{"id": entry, "vector": np.asarray(vectors[0]), "payload": payload}])
    return entry


async def search(client, data: bytes, k: int = 10) -> list[tuple[str, float]]:
    answer = (await client.post("/v1/search", files={"image": ("q.jpg", data)}, data={"k": str(k)})).json()
    return [(r["id"], r["score"]) for r in answer["results"]]


async def test_a_dog_with_two_photos_is_one_dog_ranked_by_its_best_photo(running):
    client, gallery = running
    rex = (await client.post("/v1/dogs", files={"image": ("a.jpg", BLUE)}, data={"name": "rex"})).json()["id"]
    await add_entry(gallery, rex, NEAR_RED)  # a second photo of rex, not his cover
    other = (await client.post("/v1/dogs", files={"image": ("b.jpg", solid((120, 120, 30)))})).json()["id"]
    assert (await client.get("/v1/dogs")).json()["total"] == 2  # dogs, not entries
    hits = await search(client, RED)
    assert [dog for dog, _ in hits] == [rex, other]  # rex once, first: his second photo is near the query
    assert hits[0][1] > 0.99
    assert (await client.get(f"/v1/dogs/{rex}")).json()["payload"]["name"] == "rex"
    similar = (await client.get(f"/v1/dogs/{other}/similar")).json()["results"]
    assert [r["id"] for r in similar] == [rex]  # once, whichever of his photos is nearer
    assert [r["id"] for r in (await client.get(f"/v1/dogs/{rex}/similar")).json()["results"]] == [other]


async def test_deleting_a_dog_deletes_its_entries_and_the_photos_no_one_else_is_in(running):
    client, gallery = running
    rex = (await client.post("/v1/dogs", files={"image": ("a.jpg", BLUE)})).json()["id"]
    second = await add_entry(gallery, rex, NEAR_RED)
    fido = (await client.post("/v1/dogs", files={"image": ("b.jpg", RED)})).json()["id"]
    await add_entry(gallery, fido, BLUE, index=1)  # fido is in rex's cover photo too, beside him
    assert (await client.delete(f"/v1/dogs/{rex}")).status_code == 204
    assert await gallery.index.lookup([rex, second]) == {}
    assert not gallery.photos.original(photo_id(sha256_hex(NEAR_RED)), "JPEG").exists()
    assert gallery.photos.original(photo_id(sha256_hex(BLUE)), "JPEG").exists()  # fido is still in it
    assert [dog for dog, _ in await search(client, BLUE)] == [fido]


@pytest.mark.parametrize("expansion", [None, Expansion(2, 1.0), Expansion(3, 0.0)], ids=["plain", "2-1", "3-0"])
async def test_dogs_with_many_photos_rank_once_each_k_right_and_exactly_by_their_best_photo(running, expansion):
    # Four look-alike dogs with 60 photos each crowd the query's neighbourhood, and 30 dogs of 2 photos are farther
    # out: the 12 best dogs must be exactly those of a brute-force ranking (each dog by its best photo), each once;
    # with query expansion, in the order of the expanded query, each with its best photo and score of the plain one.
    client, gallery = running
    gallery.expansion = expansion
    query, seed = solid((200, 30, 30)), solid((10, 200, 10))
    await client.post("/v1/dogs", files={"image": ("seed.jpg", seed)})  # makes the collection
    _, vectors = await gallery.embedder.embed([query, seed])
    q = np.asarray(vectors[0], dtype=np.float32)
    rng = np.random.default_rng(7)
    points, dog_of = [], {}
    for d in range(34):
        dog = str(uuid.uuid4())
        centre = q + rng.normal(size=q.shape) * (0.1 if d < 4 else 0.6)
        for p in range(60 if d < 4 else 2):
            vector = centre + rng.normal(size=q.shape) * 0.05
            vector /= np.linalg.norm(vector)
            entry = str(uuid.uuid4())
            points.append({"id": entry, "vector": vector, "payload": {"dog_id": dog, "cover": p == 0,
                                                                      "photo_id": entry, "format": "JPEG"}})
            dog_of[entry] = dog
    for i in range(0, len(points), 100):
        await gallery.index.upsert(points[i:i + 100])
    stored = np.array([p["vector"] for p in points] + [vectors[1]], dtype=np.float32)

    def by_best_photo(qv: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for point in sorted(points, key=lambda p: -float(p["vector"] @ qv)):
            out.setdefault(dog_of[point["id"]], float(point["vector"] @ qv))
        return out

    best = by_best_photo(q)
    ranked = list(best)
    if expansion is not None:
        near = np.argsort(-(stored @ q))[:expansion.neighbours]
        ranked = list(by_best_photo(expand(q, stored[near], stored[near] @ q, expansion.power)))
        assert ranked[:12] != list(best)[:12]  # the expansion does reorder these dogs
    for k in (3, 12):
        answer = (await client.post("/v1/search", files={"image": ("q.jpg", query)}, data={"k": str(k)})).json()
        assert [r["id"] for r in answer["results"]] == ranked[:k]
        assert [r["score"] for r in answer["results"]] == pytest.approx([best[d] for d in ranked[:k]], abs=1e-4)
        # the photo shown is the dog's best
        for r in answer["results"]:
            assert float(next(p["vector"] for p in points if p["id"] == r["photo_id"]) @ q) == pytest.approx(
                best[r["id"]], abs=1e-4)
    crowd = list(best)[0]
    similar = (await client.get(f"/v1/dogs/{crowd}/similar", params={"k": "5"})).json()["results"]
    assert len(similar) == 5 and crowd not in [r["id"] for r in similar]
    assert len({r["id"] for r in similar}) == 5
