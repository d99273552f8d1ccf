"""What ServerStore sends to a Qdrant server, and how the search service picks it; the behaviour shared with
EdgeStore is in test_store.py (run on both engines). qdrant-client's local mode stands in for the server."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from dogsearch.search import qdrant as server_store
from dogsearch.search.edge import CollectionMismatch, CollectionMissing, EdgeStore, Point, StoreError
from dogsearch.search.engine import open_store
from dogsearch.search.qdrant import META_MODEL, ServerStore, StoreUnavailable
from dogsearch.services.search.app import create_app
from dogsearch.services.search.settings import SearchSettings

pytestmark = pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")
MODEL = "test-model@1"


class Recording:
    """A QdrantClient that records the calls that change the server, and passes everything on."""

    WRITES = {"create_collection", "create_payload_index", "delete_collection", "update_collection"}

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
    store = ServerStore(client, "dogs", shard_number=6, replication_factor=3, write_consistency_factor=2)
    assert client.calls == []  # nothing is created before the model's dim is known
    store.ensure_collection(4, MODEL)

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
    ServerStore(client).ensure_collection(4, MODEL)
    [(_, kwargs)] = client.named("create_collection")
    assert set(kwargs) == {"vectors_config", "metadata"}


def test_existing_collection_is_checked_not_recreated(client: Recording) -> None:
    first = ServerStore(client, shard_number=2, close_client=False)
    first.ensure_collection(4, MODEL)
    first.upsert([Point(str(uuid.uuid4()), [1.0, 0.0, 0.0, 0.0], {"breed": "pug"})])
    client.calls.clear()

    # Another search process on the same server, with other sharding settings: those only apply at creation.
    second = ServerStore(client, shard_number=8, close_client=False)
    assert second.collection_info == {"dim": 4, "model": MODEL}
    second.ensure_collection(4, MODEL)
    with pytest.raises(CollectionMismatch):
        second.ensure_collection(4, "other-model")
    with pytest.raises(CollectionMismatch):
        second.ensure_collection(8, MODEL)
    assert client.named("create_collection") == [] and second.count() == 1


def test_a_collection_made_by_another_process_is_picked_up(client: Recording) -> None:
    # Two search replicas behind one gateway: B was open before A created the collection.
    a, b = ServerStore(client, close_client=False), ServerStore(client, close_client=False)
    a.ensure_collection(4, MODEL)
    a.upsert([Point(str(uuid.uuid4()), [1.0, 0.0, 0.0, 0.0], {"breed": "pug"})])
    assert b.count({"breed": "pug"}) == 1
    assert b.collection_info == {"dim": 4, "model": MODEL}


def test_a_create_race_ends_with_the_one_collection(client: Recording) -> None:
    # B saw no collection, then A created it just before B's own create: B takes A's and checks it.
    ServerStore(client, close_client=False).ensure_collection(4, MODEL)
    real_get, misses = client._real.get_collection, [2]

    def get_collection(name: str):
        if misses[0]:
            misses[0] -= 1
            raise ValueError(f"Collection {name} not found")
        return real_get(name)

    client._real.get_collection = get_collection
    b = ServerStore(client, close_client=False)
    b.ensure_collection(4, MODEL)
    assert len(client.named("create_collection")) == 2  # A's, and B's that lost the race
    assert b.collection_info == {"dim": 4, "model": MODEL}
    with pytest.raises(CollectionMismatch):
        b.ensure_collection(4, "other-model")


def test_a_collection_deleted_behind_its_back_is_missing_then_made_again(client: Recording) -> None:
    store = ServerStore(client)
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
        ServerStore(client, close_client=False)
    client.create_collection("dots", vectors_config=qm.VectorParams(size=4, distance=qm.Distance.DOT),
                             metadata={META_MODEL: MODEL})
    with pytest.raises(StoreError, match="cosine"):
        ServerStore(client, "dots")


def test_settings_choose_the_engine_and_reach_the_create_call(monkeypatch, tmp_path) -> None:
    made: list[dict[str, Any]] = []
    recording = Recording(QdrantClient(":memory:"))

    def fake_client(**kwargs: Any) -> Recording:
        made.append(kwargs)
        return recording

    monkeypatch.setattr(server_store, "QdrantClient", fake_client)
    for key, value in {"QDRANT_URL": "http://qdrant:6333", "QDRANT_API_KEY": "s3cret", "QDRANT_SHARD_NUMBER": "4",
                       "QDRANT_REPLICATION_FACTOR": "2", "QDRANT_WRITE_CONSISTENCY_FACTOR": "2",
                       "COLLECTION": "pets"}.items():
        monkeypatch.setenv(f"DOGSEARCH_SEARCH_{key}", value)
    store = open_store(SearchSettings())
    assert isinstance(store, ServerStore)
    assert made == [{"url": "http://qdrant:6333", "api_key": "s3cret", "timeout": 30, "check_compatibility": False}]
    store.ensure_collection(4, MODEL)
    [(args, kwargs)] = recording.named("create_collection")
    assert args == ("pets",)
    assert (kwargs["shard_number"], kwargs["replication_factor"], kwargs["write_consistency_factor"]) == (4, 2, 2)
    store.close()

    embedded = open_store(SearchSettings(qdrant_url=None, data_dir=tmp_path))
    assert isinstance(embedded, EdgeStore)
    embedded.close()


def test_bad_qdrant_settings_fail_at_start() -> None:
    with pytest.raises(ValidationError, match="cannot exceed"):
        SearchSettings(qdrant_url="http://q:6333", qdrant_replication_factor=2, qdrant_write_consistency_factor=3)
    with pytest.raises(ValidationError):
        SearchSettings(qdrant_url="not a url")
    with pytest.raises(ValidationError):
        SearchSettings(qdrant_shard_number=0)


def test_an_unreachable_server_is_unavailable_not_a_crash() -> None:
    # Opening works (a search service may start before Qdrant); every call says the server is unreachable.
    store = ServerStore.connect("http://127.0.0.1:9", timeout_s=2)
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
    monkeypatch.setattr(server_store, "QdrantClient", lambda **_: recording)
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
