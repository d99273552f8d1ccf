from __future__ import annotations

import uuid

import httpx
import numpy as np
import pytest

from dogsearch.core.vectors import encode_f32
from dogsearch.services.search.app import create_app
from dogsearch.services.search.settings import SearchSettings


def uid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def unit(v) -> list[float]:
    v = np.asarray(v, dtype=np.float32)
    return (v / np.linalg.norm(v)).tolist()


@pytest.fixture
async def search(tmp_path):
    app = create_app(SearchSettings(data_dir=tmp_path, optimize_after=5, optimize_idle_s=0))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as client:
            yield client


async def test_collection_is_created_once_and_never_mixed(search):
    assert (await search.get("/v1/collection")).status_code == 404
    assert (await search.put("/v1/points", json={"points": [{"id": uid(0), "vector": [1, 0]}]})).status_code == 409
    r = await search.put("/v1/collection", json={"dim": 3, "model": "m1"})
    assert r.json() == {"dim": 3, "model": "m1", "count": 0}
    assert (await search.put("/v1/collection", json={"dim": 3, "model": "m1"})).status_code == 200
    for other in ({"dim": 4, "model": "m1"}, {"dim": 3, "model": "m2"}):
        r = await search.put("/v1/collection", json=other)
        assert r.status_code == 409 and "m1" in r.json()["detail"]


async def test_the_collection_is_read_without_a_count_when_asked(search, monkeypatch):
    """The gateway's readiness reads the collection's model each probe: count=false answers from its metadata, where
    an exact count walks every point (of a gallery of millions, a kubelet probing every few seconds)."""
    from dogsearch.search.edge import EdgeStore

    await search.put("/v1/collection", json={"dim": 2, "model": "m"})
    await search.put("/v1/points", json={"points": [{"id": uid(i), "vector": unit([1, i])} for i in range(3)]})
    counted, count = [], EdgeStore.count
    monkeypatch.setattr(EdgeStore, "count", lambda store, flt=None: counted.append(flt) or count(store, flt))
    assert (await search.get("/v1/collection", params={"count": "false"})).json() == {"dim": 2, "model": "m"}
    assert counted == []
    assert (await search.get("/v1/collection")).json() == {"dim": 2, "model": "m", "count": 3}  # an operator's read
    assert counted == [None]


async def test_metrics_say_how_many_entries_the_collection_holds_without_counting_them(search, monkeypatch):
    """Read from the engine's own tally: an exact count walks every point each scrape (~74 ms at a million, the
    store's lock and the GIL held, searches waiting)."""
    from dogsearch.search.edge import EdgeStore

    def points(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith("dogsearch_search_points ")]

    counted, count = [], EdgeStore.count
    monkeypatch.setattr(EdgeStore, "count", lambda store, flt=None: counted.append(flt) or count(store, flt))
    assert points((await search.get("/metrics")).text) == ["dogsearch_search_points 0.0"]  # no collection yet
    await search.put("/v1/collection", json={"dim": 2, "model": "m"})
    await search.put("/v1/points", json={"points": [{"id": uid(i), "vector": unit([1, i])} for i in range(3)]})
    await search.delete(f"/v1/points/{uid(0)}")
    counted.clear()  # PUT /v1/collection answers with an exact count
    assert points((await search.get("/metrics")).text) == ["dogsearch_search_points 2.0"]
    assert counted == []


async def test_points_query_similar_scroll_and_delete(search):
    await search.put("/v1/collection", json={"dim": 3, "model": "m"})
    points = [{"id": uid(i), "vector": unit(v), "payload": {"breed": b}}
              for i, (v, b) in enumerate([([1, 0, 0], "a"), ([0.9, 0.1, 0], "a"), ([0, 1, 0], "b"), ([0, 0, 1], "b")])]
    assert (await search.put("/v1/points", json={"points": points})).json() == {"upserted": 4}

    hits = (await search.post("/v1/query", json={"vector": [1, 0, 0], "k": 2})).json()["hits"]
    assert [h["id"] for h in hits] == [uid(0), uid(1)] and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    only_b = (await search.post("/v1/query", json={"vector": [1, 0, 0], "k": 5, "filter": {"breed": "b"}})).json()
    assert {h["id"] for h in only_b["hits"]} == {uid(2), uid(3)}

    similar = (await search.post(f"/v1/points/{uid(0)}/similar", json={"k": 1})).json()["hits"]
    assert [h["id"] for h in similar] == [uid(1)]
    page = (await search.post("/v1/points/scroll", json={"limit": 3})).json()
    rest = (await search.post("/v1/points/scroll", json={"limit": 3, "offset": page["next"]})).json()
    assert len(page["points"]) == 3 and len(rest["points"]) == 1 and rest["next"] is None
    assert (await search.post("/v1/points/count", json={"filter": {"breed": "a"}})).json() == {"count": 2}

    # vectors may also come as base64 float32 (what the bundled clients send)
    packed = {"id": uid(7), "vector": encode_f32(np.asarray(unit([0, 0.6, 0.8]), dtype=np.float32))}
    assert (await search.put("/v1/points", json={"points": [packed]})).status_code == 200
    hits = (await search.post("/v1/query", json={"vector": unit([0, 0.6, 0.8]), "k": 1})).json()["hits"]
    assert hits[0]["id"] == uid(7) and hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    for bad in ("%%%", encode_f32(np.ones(2, dtype=np.float32))):
        r = await search.put("/v1/points", json={"points": [{"id": uid(8), "vector": bad}]})
        assert r.status_code == 422, r.text
    await search.delete(f"/v1/points/{uid(7)}")

    looked_up = (await search.post("/v1/points/lookup", json={"ids": [uid(3), uid(9), uid(0)]})).json()["points"]
    assert sorted(p["id"] for p in looked_up) == [uid(0), uid(3)]
    assert {p["id"]: p["payload"]["breed"] for p in looked_up} == {uid(0): "a", uid(3): "b"}
    assert (await search.post("/v1/points/lookup", json={"ids": ["nope"]})).status_code == 422

    assert (await search.delete(f"/v1/points/{uid(0)}")).status_code == 204
    assert (await search.get(f"/v1/points/{uid(0)}")).status_code == 404
    assert (await search.delete(f"/v1/points/{uid(0)}")).status_code == 404
    assert (await search.get("/v1/collection")).json()["count"] == 3


@pytest.mark.parametrize(
    "body",
    [{"points": [{"id": "not-a-uuid", "vector": [1, 0, 0]}]},
     {"points": [{"id": str(uuid.uuid4()), "vector": [1, 0]}]},
     {"points": [{"id": str(uuid.uuid4()), "vector": [0, 0, 0]}]},
     {"points": []}],
    ids=["bad-id", "wrong-dim", "zero-vector", "empty"],
)
async def test_bad_points_are_422_and_change_nothing(search, body):
    await search.put("/v1/collection", json={"dim": 3, "model": "m"})
    r = await search.put("/v1/points", json=body)
    assert r.status_code == 422, r.text
    assert (await search.get("/v1/collection")).json()["count"] == 0


async def test_k_is_bounded(search):
    await search.put("/v1/collection", json={"dim": 2, "model": "m"})
    assert (await search.post("/v1/query", json={"vector": [1, 0], "k": 0})).status_code == 422
    assert (await search.post("/v1/query", json={"vector": [1, 0], "k": 5000})).status_code == 422


async def test_index_is_built_after_enough_changes_when_quiet(search):
    await search.put("/v1/collection", json={"dim": 8, "model": "m"})
    rng = np.random.default_rng(0)
    points = [{"id": uid(i), "vector": unit(rng.normal(size=8))} for i in range(50)]
    await search.put("/v1/points", json={"points": points})
    assert (await search.get("/v1/stats")).json()["points"] == 50
    built = (await search.post("/v1/optimize")).json()
    assert built["indexed_vectors"] == 50


async def test_indexes_filters_and_payload_updates_over_http(search):
    r = await search.put("/v1/collection", json={"dim": 2, "model": "m", "indexes": {"breed": "keyword"}})
    assert r.json() == {"dim": 2, "model": "m", "count": 0}  # the answer's shape is unchanged
    r = await search.put("/v1/collection", json={"dim": 2, "model": "m", "indexes": {"age": "integer"}})
    assert r.status_code == 200  # added to the existing collection
    r = await search.put("/v1/collection", json={"dim": 2, "model": "m", "indexes": {"age": "text"}})
    assert r.status_code == 422
    points = [{"id": uid(i), "vector": unit([1, i]), "payload": {"breed": b, **({"age": i} if i else {})}}
              for i, b in enumerate(["pug", "pug", "husky"])]
    await search.put("/v1/points", json={"points": points})

    async def ids(path: str, body: dict) -> list[str]:
        r = await search.post(path, json=body)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["hits" if "hits" in r.json() else "points"]]

    not_husky = {"vector": [1, 0], "k": 5, "filter": {"$not": {"breed": "husky"}}}
    assert await ids("/v1/query", not_husky) == [uid(0), uid(1)]
    assert await ids("/v1/query", {"vector": [1, 0], "k": 5, "filter": {"$empty": ["age"]}}) == [uid(0)]
    assert await ids("/v1/points/scroll", {"filter": {"$not": {"$empty": ["age"]}, "breed": ["pug", "husky"]}}) \
        == sorted([uid(1), uid(2)])
    assert await ids(f"/v1/points/{uid(0)}/similar", {"filter": {"$not": {"age": 2}}}) == [uid(1)]
    assert (await search.post("/v1/points/count", json={"filter": {"$not": {"breed": "pug"}}})).json() == {"count": 1}
    for bad in ({"$not": {"$not": {"breed": "pug"}}}, {"$or": ["a"]}, {"$empty": "age"}, {"breed": {"a": 1}}):
        r = await search.post("/v1/points/count", json={"filter": bad})
        assert r.status_code == 422, (bad, r.text)
    r = await search.post("/v1/points/count", json={"filter": {"$empty": ["$x"]}})
    assert r.status_code == 422 and "unknown operator" in r.json()["detail"]

    # where and when: the operators travel over HTTP as the store reads them
    await search.put("/v1/collection", json={"dim": 2, "model": "m",
                                             "indexes": {"location": "geo", "seen_at": "datetime"}})
    await search.post("/v1/points/payload", json={"ids": [uid(0)], "payload": {
        "location": {"lat": 52.52, "lon": 13.405}, "seen_at": "2026-11-30T17:05:00+00:00"}})
    await search.post("/v1/points/payload", json={"ids": [uid(1)], "payload": {
        "location": {"lat": 53.55, "lon": 9.99}, "seen_at": "2026-11-01T00:00:00+00:00"}})
    berlin = {"$near": {"lat": 52.5, "lon": 13.4, "radius_km": 20}}
    assert await ids("/v1/query", {"vector": [1, 0], "k": 5, "filter": {"location": berlin}}) == [uid(0)]
    assert await ids("/v1/query", {"vector": [1, 0], "k": 5, "filter": {"seen_at": {"$lte": "2026-11-15"}}}) \
        == [uid(1)]
    assert await ids(f"/v1/points/{uid(1)}/similar", {"filter": {"$not": {"location": berlin}}}) == [uid(2)]
    for bad, words in (({"location": {"$near": {"lat": 99, "lon": 0, "radius_km": 1}}}, "latitude"),
                       ({"seen_at": {"$gte": "soon"}}, "ISO 8601"),
                       ({"seen_at": {"$after": "2026-01-01"}}, "")):
        r = await search.post("/v1/points/count", json={"filter": bad})
        assert r.status_code == 422 and words in str(r.json()["detail"]), (bad, r.text)
    # and so does an order: the newest first, a page at a time, the undated in none
    newest = (await search.post("/v1/points/scroll", json={"limit": 1, "order_by": "-seen_at"})).json()
    older = (await search.post("/v1/points/scroll", json={"limit": 1, "order_by": "-seen_at",
                                                           "offset": newest["next"]})).json()
    assert [p["id"] for p in newest["points"] + older["points"]] == [uid(0), uid(1)] and older["next"] is None
    for bad in ({"order_by": "-age"}, {"order_by": "seen_at desc"}, {"order_by": "-seen_at", "offset": "x" * 9000},
                {"order_by": "-seen_at", "offset": uid(1)}):
        r = await search.post("/v1/points/scroll", json={"limit": 1, **bad})
        assert r.status_code == 422, (bad, r.text)

    r = await search.post("/v1/points/payload", json={"ids": [uid(0), uid(2)], "payload": {"vet": "ok"}})
    assert r.status_code == 200 and r.json() == {"updated": 2}
    assert (await search.get(f"/v1/points/{uid(2)}")).json()["payload"] == {"breed": "husky", "age": 2, "vet": "ok"}
    r = await search.post("/v1/points/payload", json={"ids": [uid(1), uid(9)], "payload": {"vet": "no"}})
    assert r.status_code == 404 and r.json()["code"] == "point_not_found"
    assert (await search.post("/v1/points/count", json={"filter": {"vet": "no"}})).json() == {"count": 0}
    r = await search.post("/v1/points/payload", json={"ids": ["nope"], "payload": {}})
    assert r.status_code == 422


async def test_the_client_sends_indexes_and_payload_updates(tmp_path):
    from dogsearch.search.contract import PointNotFound
    from dogsearch.services.search.client import SearchClient

    app = create_app(SearchSettings(data_dir=tmp_path))
    async with app.router.lifespan_context(app):
        client = SearchClient("http://search", app=app)
        assert await client.ensure_collection(2, "m", {"breed": "keyword"}) == {"dim": 2, "model": "m", "count": 0}
        assert await client.ensure_collection(2, "m") == {"dim": 2, "model": "m", "count": 0}
        assert await client.collection() == {"dim": 2, "model": "m"}  # what readiness reads: no count
        await client.upsert([{"id": uid(0), "vector": np.asarray([1.0, 0.0], dtype=np.float32), "payload": {}}])
        assert await client.set_payload([uid(0)], {"breed": "pug"}) == {"updated": 1}
        assert await client.count({"breed": "pug"}) == 1
        with pytest.raises(PointNotFound):
            await client.set_payload([uid(5)], {"breed": "pug"})
        await client.aclose()


def test_the_openapi_schema_describes_the_filter_forms(tmp_path):
    schema = create_app(SearchSettings(data_dir=tmp_path)).openapi()
    components = schema["components"]["schemas"]
    assert set(components["Filter"]["properties"]) == {"$not", "$empty"}
    assert "additionalProperties" in components["Filter"]
    assert components["CollectionSpec"]["properties"]["indexes"]["additionalProperties"]["enum"] == [
        "keyword", "integer", "float", "bool", "geo", "datetime"]
    assert "/v1/points/payload" in schema["paths"]
