"""What QdrantStore and QdrantEngine send to a Qdrant server, and how the search service picks them; the behaviour
shared with the embedded engine is in test_contract.py (run on both engines). qdrant-client's local mode stands in
for the server."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import UnexpectedResponse

from dogsearch.search import qdrant as qdrant_module
from dogsearch.search.contract import (
    CollectionInfo,
    CollectionMismatch,
    CollectionMissing,
    Point,
    PointNotFound,
    StoreError,
    StoreUnavailable,
)
from dogsearch.search.edge import EdgeEngine, EdgeStore
from dogsearch.search.engine import open_engine, open_store
from dogsearch.search.qdrant import META_MODEL, QdrantEngine, QdrantStore
from dogsearch.services.search.app import create_app
from dogsearch.services.search.settings import SearchSettings

pytestmark = pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")
MODEL = "test-model@1"


class Recording:
    """A QdrantClient that records the calls that change the server, and passes everything on."""

    WRITES = {"create_collection", "create_payload_index", "delete_collection", "update_collection",
              "update_collection_aliases", "set_payload"}

    def __init__(self, client: QdrantClient) -> None:
        self._real = client
        self.calls: list[tuple[str, tuple, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._real, name)
        if name not in self.WRITES:
            return attr

        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return attr(*args, **kwargs)

        return record

    def named(self, name: str) -> list[tuple[tuple, dict[str, Any]]]:
        return [(args, kwargs) for n, args, kwargs in self.calls if n == name]


@pytest.fixture
def client() -> Recording:
    return Recording(QdrantClient(":memory:"))


def test_create_sends_size_cosine_model_sharding_and_indexes(client: Recording) -> None:
    store = QdrantStore(client, "dogs", shard_number=6, replication_factor=3, write_consistency_factor=2)
    assert client.calls == []  # nothing is created before the model's dim is known
    store.ensure_collection(4, MODEL, {"breed": "keyword", "name": "keyword"})

    assert client.named("create_collection") == [(
        ("dogs",),
        {"vectors_config": qm.VectorParams(size=4, distance=qm.Distance.COSINE), "metadata": {META_MODEL: MODEL},
         "shard_number": 6, "replication_factor": 3, "write_consistency_factor": 2},
    )]
    assert client.named("create_payload_index") == [
        (("dogs", "breed", qm.PayloadSchemaType.KEYWORD), {"wait": True}),
        (("dogs", "name", qm.PayloadSchemaType.KEYWORD), {"wait": True}),
    ]
    # And what the engine holds: size, distance, and the model in the collection's metadata.
    config = client.get_collection("dogs").config
    assert (config.params.vectors.size, config.params.vectors.distance) == (4, qm.Distance.COSINE)
    assert config.metadata == {META_MODEL: MODEL}


def test_server_defaults_when_sharding_is_not_set(client: Recording) -> None:
    QdrantStore(client).ensure_collection(4, MODEL)
    [(_, kwargs)] = client.named("create_collection")
    assert set(kwargs) == {"vectors_config", "metadata"}
    assert client.named("create_payload_index") == []  # only the indexes asked for


def test_indexes_asked_for_on_an_existing_collection_are_created(client: Recording) -> None:
    store = QdrantStore(client, close_client=False)
    store.ensure_collection(4, MODEL, {"breed": "keyword"})
    client.calls.clear()
    store.ensure_collection(4, MODEL, {"breed": "keyword", "age": "integer", "at": "datetime", "good": "bool",
                                       "weight": "float", "where": "geo"})
    assert client.named("create_payload_index") == [
        (("dogs", field, kind), {"wait": True})
        for field, kind in (("age", qm.PayloadSchemaType.INTEGER), ("at", qm.PayloadSchemaType.DATETIME),
                            ("good", qm.PayloadSchemaType.BOOL), ("weight", qm.PayloadSchemaType.FLOAT),
                            ("where", qm.PayloadSchemaType.GEO))
    ]
    client.calls.clear()
    store.ensure_collection(4, MODEL, {"breed": "keyword", "age": "integer"})  # known to exist now: not sent again
    assert client.calls == []
    # Another search process opening it reads the server's schema (local mode keeps none, so it sends them again:
    # harmless, the server keeps an index of the same kind as it is).
    other = QdrantStore(client, close_client=False)
    other.ensure_collection(4, MODEL, {"age": "integer"})
    assert [args[1] for args, _ in client.named("create_payload_index")] == ["age"]


def test_existing_collection_is_checked_not_recreated(client: Recording) -> None:
    first = QdrantStore(client, shard_number=2, close_client=False)
    first.ensure_collection(4, MODEL)
    first.upsert([Point(str(uuid.uuid4()), [1.0, 0.0, 0.0, 0.0], {"breed": "pug"})])
    client.calls.clear()

    # Another search process on the same server, with other sharding settings: those only apply at creation.
    second = QdrantStore(client, shard_number=8, close_client=False)
    assert second.collection_info == CollectionInfo(dim=4, model=MODEL)
    second.ensure_collection(4, MODEL)
    with pytest.raises(CollectionMismatch):
        second.ensure_collection(4, "other-model")
    with pytest.raises(CollectionMismatch):
        second.ensure_collection(8, MODEL)
    assert client.named("create_collection") == [] and second.count() == 1


def test_a_collection_made_by_another_process_is_picked_up(client: Recording) -> None:
    # Two search replicas behind one gateway: B was open before A created the collection.
    a, b = QdrantStore(client, close_client=False), QdrantStore(client, close_client=False)
    a.ensure_collection(4, MODEL)
    a.upsert([Point(str(uuid.uuid4()), [1.0, 0.0, 0.0, 0.0], {"breed": "pug"})])
    assert b.count({"breed": "pug"}) == 1
    assert b.collection_info == CollectionInfo(dim=4, model=MODEL)


def test_a_create_race_ends_with_the_one_collection(client: Recording) -> None:
    # B saw no collection, then A created it just before B's own create: B takes A's and checks it.
    QdrantStore(client, close_client=False).ensure_collection(4, MODEL)
    real_get, misses = client._real.get_collection, [2]

    def get_collection(name: str):
        if misses[0]:
            misses[0] -= 1
            raise ValueError(f"Collection {name} not found")
        return real_get(name)

    client._real.get_collection = get_collection
    b = QdrantStore(client, close_client=False)
    b.ensure_collection(4, MODEL)
    assert len(client.named("create_collection")) == 2  # A's, and B's that lost the race
    assert b.collection_info == CollectionInfo(dim=4, model=MODEL)
    with pytest.raises(CollectionMismatch):
        b.ensure_collection(4, "other-model")


def test_a_collection_deleted_behind_its_back_is_missing_then_made_again(client: Recording) -> None:
    store = QdrantStore(client)
    store.ensure_collection(4, MODEL)
    client.delete_collection("dogs")
    with pytest.raises(CollectionMissing):
        store.count()
    assert store.collection_info is None
    store.ensure_collection(4, MODEL)
    assert store.count() == 0


def test_a_foreign_collection_is_refused(client: Recording) -> None:
    client.create_collection("dogs", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.COSINE))
    with pytest.raises(StoreError, match=META_MODEL):
        QdrantStore(client, close_client=False)
    client.create_collection("dots", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT),
                             metadata={META_MODEL: MODEL})
    with pytest.raises(StoreError, match="cosine"):
        QdrantStore(client, "dots")


def test_settings_choose_the_engine_and_reach_the_create_call(monkeypatch, tmp_path) -> None:
    made: list[dict[str, Any]] = []
    recording = Recording(QdrantClient(":memory:"))

    def fake_client(**kwargs: Any) -> Recording:
        made.append(kwargs)
        return recording

    monkeypatch.setattr(qdrant_module, "QdrantClient", fake_client)
    for key, value in {"QDRANT_URL": "http://qdrant:6333", "QDRANT_API_KEY": "s3cret", "QDRANT_SHARD_NUMBER": "4",
                       "QDRANT_REPLICATION_FACTOR": "2", "QDRANT_WRITE_CONSISTENCY_FACTOR": "2",
                       "COLLECTION": "pets"}.items():
        monkeypatch.setenv(f"DOGSEARCH_SEARCH_{key}", value)
    settings = SearchSettings()
    store = open_store(settings.collection, **settings.engine_options())
    assert type(store) is QdrantStore
    assert made == [{"url": "http://qdrant:6333", "api_key": "s3cret", "timeout": 30, "check_compatibility": False}]
    store.ensure_collection(4, MODEL)
    [(args, kwargs)] = recording.named("create_collection")
    assert args == ("pets",)
    assert (kwargs["shard_number"], kwargs["replication_factor"], kwargs["write_consistency_factor"]) == (4, 2, 2)
    store.close()

    engine = open_engine(**settings.engine_options())
    assert type(engine) is QdrantEngine and len(made) == 2 and made[0] == made[1]
    engine.close()

    embedded = SearchSettings(qdrant_url=None, data_dir=tmp_path)
    store = open_store(embedded.collection, **embedded.engine_options())
    assert type(store) is EdgeStore and (tmp_path / "pets").is_dir()
    store.close()
    assert type(open_engine(**embedded.engine_options())) is EdgeEngine


def test_bad_qdrant_settings_fail_at_start() -> None:
    with pytest.raises(ValidationError, match="cannot exceed"):
        SearchSettings(qdrant_url="http://q:6333", qdrant_replication_factor=2, qdrant_write_consistency_factor=3)
    with pytest.raises(ValidationError):
        SearchSettings(qdrant_url="not a url")
    with pytest.raises(ValidationError):
        SearchSettings(qdrant_shard_number=0)


def test_an_unreachable_server_is_unavailable_not_a_crash() -> None:
    # Opening works (a search service may start before Qdrant); every call says the server is unreachable.
    store = QdrantStore.connect("http://127.0.0.1:9", timeout_s=2)
    assert "unreachable" in store.unavailable()
    for call in (store.count, lambda: store.collection_info, lambda: store.ensure_collection(4, MODEL)):
        with pytest.raises(StoreUnavailable, match="qdrant unreachable"):
            call()
    store.close()


async def test_search_app_with_its_server_down_is_not_ready_and_answers_503() -> None:
    app = create_app(SearchSettings(qdrant_url="http://127.0.0.1:9", qdrant_timeout_s=2))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search") as http:
            r = await http.get("/readyz")
            assert r.status_code == 503 and "unreachable" in r.json()["reason"]
            for method, path, body in (("GET", "/v1/collection", None), ("POST", "/v1/points/count", {}),
                                       ("PUT", "/v1/collection", {"dim": 4, "model": MODEL})):
                r = await http.request(method, path, json=body)
                assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text


async def test_search_app_on_a_server_store(monkeypatch) -> None:
    recording = Recording(QdrantClient(":memory:"))
    monkeypatch.setattr(qdrant_module, "QdrantClient", lambda **_: recording)
    app = create_app(SearchSettings(qdrant_url="http://qdrant:6333", qdrant_shard_number=2))
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search") as http:
            assert (await http.get("/readyz")).status_code == 200
            r = await http.put("/v1/collection", json={"dim": 2, "model": MODEL})
            assert r.status_code == 200 and r.json()["dim"] == 2
            points = [{"id": i, "vector": [1.0, float(n)], "payload": {"breed": "pug" if n else "husky"}}
                      for n, i in enumerate(ids)]
            assert (await http.put("/v1/points", json={"points": points})).status_code == 200
            hits = (await http.post("/v1/query", json={"vector": [1.0, 0.0], "k": 2,
                                                        "filter": {"breed": "pug"}})).json()["hits"]
            assert [h["id"] for h in hits] == [ids[1], ids[2]]
            r = await http.put("/v1/points", json={"points": [{"id": ids[0], "vector": [1.0], "payload": {}}]})
            assert r.status_code == 422
            r = await http.put("/v1/collection", json={"dim": 3, "model": MODEL})
            assert r.status_code == 409
            assert (await http.post("/v1/optimize")).json()["points"] == 3
    assert recording.named("create_collection")[0][1]["shard_number"] == 2


async def test_the_collection_read_without_a_count_asks_the_server_for_none(monkeypatch) -> None:
    recording = Recording(QdrantClient(":memory:"))
    recording.WRITES = Recording.WRITES | {"count"}  # the count is no write, but it is what is watched here
    monkeypatch.setattr(qdrant_module, "QdrantClient", lambda **_: recording)
    app = create_app(SearchSettings(qdrant_url="http://qdrant:6333"))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://search") as http:
            await http.put("/v1/collection", json={"dim": 2, "model": MODEL})
            points = [{"id": str(uuid.uuid4()), "vector": [1.0, float(n)]} for n in range(3)]
            await http.put("/v1/points", json={"points": points})
            recording.calls.clear()
            assert (await http.get("/v1/collection?count=false")).json() == {"dim": 2, "model": MODEL}
            assert recording.named("count") == []
            assert (await http.get("/v1/collection")).json()["count"] == 3
            assert len(recording.named("count")) == 1


# ---- the engine: aliases --------------------------------------------------------------------------------------


def made(client: Recording, name: str, dim: int, model: str) -> None:
    with QdrantStore(client, name, close_client=False) as s:
        s.ensure_collection(dim, model)
        s.upsert([Point(str(uuid.uuid4()), [1.0] * dim, {"model": model})])


def aliases(client: Recording) -> dict[str, str]:
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def test_the_first_swap_of_a_plain_collection_deletes_it_then_aliases_the_name(client: Recording) -> None:
    engine = QdrantEngine(client, close_client=False)
    made(client, "dogs", 4, MODEL)
    made(client, "dogs__v2", 8, "m2")
    client.calls.clear()
    assert engine.swap("dogs", "dogs__v2") is None  # nothing of the old one is left
    create = qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name="dogs__v2", alias_name="dogs"))
    assert client.calls == [("delete_collection", ("dogs",), {}),
                            ("update_collection_aliases", (), {"change_aliases_operations": [create]})]
    assert aliases(client) == {"dogs": "dogs__v2"}
    with engine.open("dogs") as s:
        assert s.collection_info == CollectionInfo(8, "m2") and s.count({"model": "m2"}) == 1


def test_a_swap_of_an_alias_is_one_atomic_request(client: Recording) -> None:
    engine = QdrantEngine(client, close_client=False)
    made(client, "dogs__v2", 8, "m2")
    engine.swap("dogs", "dogs__v2")
    made(client, "dogs__v3", 2, "m3")
    client.calls.clear()
    assert engine.swap("dogs", "dogs__v3") == "dogs__v2"
    assert client.calls == [("update_collection_aliases", (), {"change_aliases_operations": [
        qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name="dogs")),
        qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name="dogs__v3", alias_name="dogs")),
    ]})]
    assert aliases(client) == {"dogs": "dogs__v3"}
    assert engine.swap("dogs", "dogs__v3") is None  # already so: nothing to do
    # The collection an alias serves cannot be dropped by its own name, nor swapped in as an alias.
    with pytest.raises(StoreError, match="served as 'dogs'"):
        engine.drop("dogs__v3")
    with pytest.raises(StoreError, match="is an alias"):
        engine.swap("cats", "dogs")
    engine.drop("dogs__v2")
    engine.drop("dogs")  # the alias, and the collection it names
    assert aliases(client) == {} and client.get_collections().collections == []
    with pytest.raises(StoreError, match=META_MODEL):  # a collection made by something else is never swapped in
        client.create_collection("foreign", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.COSINE))
        engine.swap("dogs", "foreign")


def test_a_store_opened_before_a_swap_follows_the_alias(client: Recording) -> None:
    # A search replica that stays up across a reindex reads the new collection through the name (its dim and model
    # are re-read once the replica restarts, as the docs say to do).
    made(client, "dogs", 4, MODEL)
    made(client, "dogs__v2", 4, "m2")
    with QdrantStore(client, close_client=False) as replica:
        assert replica.count({"model": MODEL}) == 1
        QdrantEngine(client, close_client=False).swap("dogs", "dogs__v2")
        assert replica.count({"model": MODEL}) == 0 and replica.count({"model": "m2"}) == 1


def test_a_point_deleted_before_set_payload_reaches_the_server_is_point_not_found(client: Recording) -> None:
    store = QdrantStore(client, close_client=False)
    store.ensure_collection(2, MODEL)
    point = str(uuid.uuid4())
    store.upsert([Point(point, [1.0, 0.0], {})])

    def gone(*args: Any, **kwargs: Any) -> None:
        raise UnexpectedResponse(404, "Not Found", f'{{"status": {{"error": "No point with id {point} found"}}}}'
                                 .encode(), httpx.Headers())

    client._real.set_payload = gone
    with pytest.raises(PointNotFound):
        store.set_payload([point], {"a": 1})
    assert store.collection_info == CollectionInfo(2, MODEL)  # not taken for a missing collection
