"""The store interface on both engines, no mocks: EdgeStore over the real qdrant-edge engine, and ServerStore
over qdrant-client's local mode (it speaks the same client API as a Qdrant server; no server binary is here)."""
from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from dogsearch.search.edge import (
    CollectionMismatch,
    CollectionMissing,
    EdgeStore,
    Hit,
    InvalidStoreInput,
    Point,
    PointNotFound,
    StoreError,
)
from dogsearch.search.qdrant import ServerStore

MODEL = "test-model@1"


def uid(name: str | int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dog:{name}"))


# Hand-made 4-d points: cosine to the query [1, 0, 0, 0] is 1, 0.8, 0.6, 0, -1.
DOGS = {
    "rex": ([1.0, 0.0, 0.0, 0.0], {"breed": "pug", "name": "Rex", "color": "black", "age": 3, "good": True}),
    "bella": ([4.0, 3.0, 0.0, 0.0], {"breed": "beagle", "name": "Bella", "color": "black", "age": 5, "good": False}),
    "max": ([3.0, 0.0, 4.0, 0.0], {"breed": "pug", "name": "Max", "color": "fawn", "age": 5, "good": 1}),
    "luna": ([0.0, 0.0, 0.0, 2.0], {"breed": "husky", "name": "Luna", "color": "white", "tags": ["fluffy", "loud"]}),
    "odie": ([-1.0, 0.0, 0.0, 0.0], {"breed": "beagle", "name": "Odie", "color": "fawn", "age": 3}),
}
ORDER = ["rex", "bella", "max", "luna", "odie"]
SCORES = [1.0, 0.8, 0.6, 0.0, -1.0]


def dog_points() -> list[Point]:
    return [Point(uid(n), vector, payload) for n, (vector, payload) in DOGS.items()]


class LocalQdrant:
    """Opens ServerStores on qdrant-client's local mode standing in for a server: one client per directory (one
    "server"), shared by the stores on it and closed with the last of them, so that a reopen reads the disk."""

    def __init__(self) -> None:
        self.clients: dict[str, tuple[QdrantClient, int]] = {}

    def __call__(self, path: Path, collection: str = "dogs") -> ServerStore:
        key = str(path)
        client, users = self.clients.get(key) or (QdrantClient(path=key), 0)
        self.clients[key] = (client, users + 1)
        try:
            return _SharedClientStore(self, key, client, collection)
        except BaseException:
            self.release(key)
            raise

    def release(self, key: str) -> None:
        client, users = self.clients.pop(key)
        if users > 1:
            self.clients[key] = (client, users - 1)
        else:
            client.close()


class _SharedClientStore(ServerStore):
    def __init__(self, owner: LocalQdrant, key: str, client: QdrantClient, collection: str) -> None:
        self._owner, self._key = owner, key
        super().__init__(client, collection, close_client=False)

    def close(self) -> None:
        if not self._closed:
            self._owner.release(self._key)
        super().close()


# Local mode warns that it ignores payload indexes and search params (it always searches exactly).
_LOCAL_WARNINGS = pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")


@pytest.fixture(params=["edge", pytest.param("qdrant-client local", marks=_LOCAL_WARNINGS)])
def open_store(request):
    """open_store(path, collection="dogs") on each engine."""
    if request.param == "edge":
        yield EdgeStore
        return
    local = LocalQdrant()
    yield local
    for client, _ in local.clients.values():  # stores a test left open
        client.close()


@pytest.fixture
def store(tmp_path: Path, open_store):
    s = open_store(tmp_path / "vectors")
    s.ensure_collection(4, MODEL)
    s.upsert(dog_points())
    yield s
    s.close()


def names(hits: list[Hit] | list[Point]) -> list[str]:
    by_id = {uid(n): n for n in DOGS}
    return [by_id[h.id] for h in hits]


# ---- basic CRUD --------------------------------------------------------------------------------------


def test_upsert_get_delete_count(store: EdgeStore) -> None:
    assert store.count() == 5
    rex = store.get(uid("rex"))
    assert rex == Point(uid("rex"), None, DOGS["rex"][1])
    bella = store.get(uid("bella"), with_vector=True)
    assert bella is not None and bella.vector == pytest.approx([0.8, 0.6, 0.0, 0.0])  # stored unit-normalised
    assert store.get(uid("nobody")) is None
    assert sorted(names(store.retrieve([uid("max"), uid("nobody"), uid("rex")]))) == ["max", "rex"]
    assert store.retrieve([]) == []

    store.delete([uid("rex"), uid("max"), uid("nobody")])  # unknown ids are ignored
    assert store.count() == 3
    assert store.get(uid("rex")) is None
    store.delete([])
    assert store.count() == 3


def test_upsert_of_same_id_replaces(store: EdgeStore) -> None:
    store.upsert([Point(uid("rex"), [0.0, 1.0, 0.0, 0.0], {"breed": "boxer", "name": "Rex II"})])
    assert store.count() == 5
    assert store.get(uid("rex")).payload == {"breed": "boxer", "name": "Rex II"}  # whole payload replaced
    assert store.count({"breed": "pug"}) == 1
    assert names(store.query([0.0, 1.0, 0.0, 0.0], k=1)) == ["rex"]


def test_payloads_come_back_as_plain_json(store: EdgeStore) -> None:
    payload = {"breed": "pug", "nested": {"a": [1, 2.5, None]}, "t": (1, 2)}
    store.upsert([Point(uid("p"), [1.0, 1.0, 1.0, 1.0], payload)])
    got = store.get(uid("p")).payload
    assert got == {"breed": "pug", "nested": {"a": [1, 2.5, None]}, "t": [1, 2]}
    assert json.loads(json.dumps(got)) == got
    got["breed"] = "changed"  # a copy, not the store's
    assert store.get(uid("p")).payload["breed"] == "pug"
    with pytest.raises(InvalidStoreInput):
        store.upsert([Point(uid("q"), [1.0, 1.0, 1.0, 1.0], {"raw": b"bytes"})])
    with pytest.raises(InvalidStoreInput):
        store.upsert([Point(uid("q"), [1.0, 1.0, 1.0, 1.0], {"x": float("nan")})])


def test_ids_are_uuid_strings(store: EdgeStore) -> None:
    upper = uid("rex").upper()
    assert store.get(upper).id == uid("rex")  # any UUID spelling, canonical form back
    for bad in ("rex", "12", ""):
        with pytest.raises(InvalidStoreInput):
            store.upsert([Point(bad, [1.0, 0.0, 0.0, 0.0], {})])
        with pytest.raises(ValueError):  # InvalidStoreInput is a ValueError too
            store.get(bad)


# ---- query ----------------------------------------------------------------------------------------------


def test_query_order_and_cosine_scores(store: EdgeStore) -> None:
    hits = store.query([1.0, 0.0, 0.0, 0.0], k=5)
    assert names(hits) == ORDER
    assert [h.score for h in hits] == pytest.approx(SCORES, abs=1e-6)
    assert hits[0].payload == DOGS["rex"][1]
    # Cosine ignores length, and both query paths agree.
    assert names(store.query([7.0, 0.0, 0.0, 0.0], k=3)) == ORDER[:3]
    assert names(store.query([1.0, 0.0, 0.0, 0.0], k=5, exact=True)) == ORDER
    assert names(store.query([1.0, 0.0, 0.0, 0.0], k=2)) == ORDER[:2]
    assert len(store.query([1.0, 0.0, 0.0, 0.0], k=50)) == 5


def test_wrong_vectors_raise(store: EdgeStore) -> None:
    for bad in ([1.0, 0.0, 0.0], [1.0] * 5, [0.0] * 4, [float("nan"), 0.0, 0.0, 1.0], [float("inf")] * 4, None):
        with pytest.raises(InvalidStoreInput):
            store.upsert([Point(uid("bad"), bad, {})])
        with pytest.raises(InvalidStoreInput):
            store.query(bad, k=3)
    # A bad point anywhere in a batch stores nothing of it.
    with pytest.raises(InvalidStoreInput):
        store.upsert([Point(uid("ok"), [1.0, 0.0, 0.0, 0.0], {}), Point(uid("bad"), [1.0], {})])
    assert store.count() == 5
    with pytest.raises(InvalidStoreInput):
        store.query([1.0, 0.0, 0.0, 0.0], k=0)


# ---- filters ----------------------------------------------------------------------------------------------

Q = [1.0, 0.0, 0.0, 0.0]


def test_filter_single_value(store: EdgeStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": "pug"})) == ["rex", "max"]
    assert names(store.query(Q, k=5, filter={"breed": "pug"}, exact=True)) == ["rex", "max"]
    assert store.count({"breed": "beagle"}) == 2
    assert store.count({"breed": "corgi"}) == 0
    assert store.count({"age": 5}) == 2  # int
    assert store.count({"name": "Luna"}) == 1


def test_filter_list_is_any_of(store: EdgeStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": ["husky", "pug"]})) == ["rex", "max", "luna"]
    assert store.count({"age": [3, 5]}) == 4
    assert store.count({"color": ("white", "fawn")}) == 3
    assert store.count({"breed": []}) == 0
    # Mixed kinds in one list work too (the engine's own any-of takes one kind only).
    assert store.count({"age": [3, "3"]}) == 2
    assert store.count({"good": [True, 1]}) == 2


def test_filter_fields_are_anded(store: EdgeStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": "beagle", "color": "fawn"})) == ["odie"]
    assert names(store.query(Q, k=5, filter={"breed": ["pug", "beagle"], "age": 5})) == ["bella", "max"]
    assert store.count({"breed": "pug", "color": "white"}) == 0


def test_filter_on_user_fields(store: EdgeStore) -> None:
    # "color", "age", "tags" are not indexed: filters still work, by scanning.
    assert names(store.query(Q, k=5, filter={"color": "black"})) == ["rex", "bella"]
    assert store.count({"tags": "loud"}) == 1  # a list field matches when any element does
    assert store.count({"missing_field": "x"}) == 0


def test_bool_filters_match_bools_only(store: EdgeStore) -> None:
    # As in Qdrant, and unlike Python's True == 1: the int 1 on "max" is no match for True.
    assert names(store.query(Q, k=5, filter={"good": True})) == ["rex"]
    assert store.count({"good": False}) == 1
    assert store.count({"good": 1}) == 1


def test_unsupported_filter_values_raise(store: EdgeStore) -> None:
    for bad in ({"age": 5.0}, {"age": None}, {"breed": {"x": 1}}, {"breed": ["pug", 1.5]}, {"age": 2**70}, {"": "x"}):
        with pytest.raises(InvalidStoreInput):
            store.count(bad)


def test_exclude(store: EdgeStore) -> None:
    hits = store.query(Q, k=3, exclude=[uid("rex"), uid("max")])
    assert names(hits) == ["bella", "luna", "odie"]
    assert names(store.query(Q, k=5, filter={"breed": "pug"}, exclude=[uid("rex")])) == ["max"]
    assert names(store.query(Q, k=2, exclude=[uid("nobody")])) == ["rex", "bella"]


def test_similar(store: EdgeStore) -> None:
    hits = store.similar(uid("rex"), k=2)
    assert names(hits) == ["bella", "max"]
    assert hits[0].score == pytest.approx(0.8, abs=1e-6)
    assert uid("rex") not in [h.id for h in store.similar(uid("rex"), k=10)]
    assert names(store.similar(uid("rex"), k=5, filter={"breed": "beagle"})) == ["bella", "odie"]
    with pytest.raises(PointNotFound):
        store.similar(uid("nobody"), k=3)


# ---- scroll -----------------------------------------------------------------------------------------------


def test_scroll_pages_through_everything_once(store: EdgeStore) -> None:
    store.upsert([Point(uid(i), [1.0, float(i), 0.0, 1.0], {"breed": "mutt", "i": i}) for i in range(18)])
    assert store.count() == 23

    def all_pages(**kwargs) -> list[str]:
        seen, offset, pages = [], None, 0
        while True:
            page, offset = store.scroll(limit=5, offset=offset, **kwargs)
            assert 0 < len(page) <= 5
            seen += [p.id for p in page]
            pages += 1
            if offset is None:
                return seen
            assert pages < 50

    ids = all_pages()
    assert len(ids) == 23 and len(set(ids)) == 23
    assert set(ids) == {uid(n) for n in DOGS} | {uid(i) for i in range(18)}
    assert all_pages() == ids  # stable order

    mutts = all_pages(filter={"breed": "mutt"})
    assert sorted(mutts) == sorted(uid(i) for i in range(18))

    page, _ = store.scroll(limit=2, with_vector=True)
    assert all(p.vector is not None and len(p.vector) == 4 for p in page)
    assert all(p.vector is None for p in store.scroll(limit=2)[0])


# ---- lifecycle ----------------------------------------------------------------------------------------------


def test_persistence_across_reopen(tmp_path: Path, open_store) -> None:
    path = tmp_path / "vectors"
    s = open_store(path)
    s.ensure_collection(4, MODEL)
    s.upsert(dog_points())
    s.optimize()
    s.upsert([Point(uid("late"), [1.0, 0.1, 0.0, 0.0], {"breed": "pug", "name": "Late"})])  # after the index
    s.delete([uid("odie")])
    before = s.query(Q, k=10)
    before_filtered = s.query(Q, k=10, filter={"breed": "pug"})
    s.close()

    with open_store(path) as s2:
        assert s2.collection_info == {"dim": 4, "model": MODEL}
        assert s2.count() == 5
        assert s2.get(uid("late")).payload["name"] == "Late"
        assert s2.get(uid("odie")) is None
        assert s2.query(Q, k=10) == before
        assert s2.query(Q, k=10, filter={"breed": "pug"}) == before_filtered
        s2.ensure_collection(4, MODEL)  # idempotent on a reopened store
        assert s2.count() == 5


def test_collection_mismatch_loses_nothing(store: EdgeStore, tmp_path: Path, open_store) -> None:
    store.ensure_collection(4, MODEL)  # idempotent
    with pytest.raises(CollectionMismatch):
        store.ensure_collection(8, MODEL)
    with pytest.raises(CollectionMismatch):
        store.ensure_collection(4, "another-model")
    assert store.collection_info == {"dim": 4, "model": MODEL}
    assert store.count() == 5
    store.close()

    with open_store(tmp_path / "vectors") as again:
        with pytest.raises(CollectionMismatch):
            again.ensure_collection(4, "another-model")
        assert again.count() == 5
        assert names(again.query(Q, k=5)) == ORDER


def test_operations_before_ensure_collection(tmp_path: Path, open_store) -> None:
    with open_store(tmp_path / "vectors") as s:
        assert s.collection_info is None
        calls = [
            lambda: s.upsert([Point(uid("rex"), [1.0, 0.0], {})]),
            lambda: s.get(uid("rex")),
            lambda: s.delete([uid("rex")]),
            lambda: s.count(),
            lambda: s.query([1.0, 0.0], k=1),
            lambda: s.similar(uid("rex"), k=1),
            lambda: s.scroll(limit=10),
            lambda: s.optimize(),
            lambda: s.stats(),
        ]
        for call in calls:
            with pytest.raises(CollectionMissing):
                call()
        s.ensure_collection(2, MODEL)
        assert s.count() == 0


def test_collections_are_separate(tmp_path: Path, open_store) -> None:
    with open_store(tmp_path, "dogs") as dogs, open_store(tmp_path, "cats") as cats:
        dogs.ensure_collection(2, MODEL)
        cats.ensure_collection(3, MODEL)
        dogs.upsert([Point(uid("a"), [1.0, 0.0], {})])
        assert (dogs.count(), cats.count()) == (1, 0)
    with open_store(tmp_path, "dogs") as dogs:
        assert dogs.count() == 1
    with pytest.raises(InvalidStoreInput):
        open_store(tmp_path, "../escape")


def test_one_edge_store_per_directory(tmp_path: Path) -> None:
    # Edge only: the embedded engine's files belong to one process; a server takes any number of clients.
    with EdgeStore(tmp_path, "dogs") as dogs:
        dogs.ensure_collection(2, MODEL)
        dogs.upsert([Point(uid("a"), [1.0, 0.0], {})])
        with pytest.raises(StoreError, match="already open"):
            EdgeStore(tmp_path, "dogs")
    with EdgeStore(tmp_path, "dogs") as dogs:  # free again once closed
        assert dogs.count() == 1


def test_closed_store_raises(tmp_path: Path, open_store) -> None:
    s = open_store(tmp_path)
    s.ensure_collection(2, MODEL)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.count()
    with pytest.raises(StoreError, match="closed"):
        s.ensure_collection(2, MODEL)


def test_concurrent_use_from_threads(store: EdgeStore) -> None:
    errors: list[BaseException] = []
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((4, 50, 4)).tolist()

    def writer(t: int) -> None:
        try:
            for i, v in enumerate(vectors[t]):
                store.upsert([Point(uid(f"w{t}-{i}"), v, {"breed": "mutt", "t": t})])
                if i % 5 == 0:
                    store.delete([uid(f"w{t}-{i}")])
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(100):
                assert len(store.query(Q, k=3)) == 3
                store.count({"breed": "mutt"})
                store.scroll(limit=7)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert store.count({"breed": "mutt"}) == 4 * 40


# ---- HNSW ------------------------------------------------------------------------------------------------------


def test_hnsw_recall_against_exact(tmp_path: Path) -> None:
    # Edge only: qdrant-client's local mode has no HNSW graph (it always searches exactly), and a server's
    # graph is Qdrant's own, built in the background.
    rng = np.random.default_rng(42)
    n, dim, centres = 5000, 256, 500
    c = rng.standard_normal((centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    noise = 0.2 / np.sqrt(dim)  # noise vectors of length ~0.2 around unit centres
    x = c[rng.integers(0, centres, n)] + noise * rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    queries = x[rng.choice(n, 50, replace=False)] + noise * rng.standard_normal((50, dim))

    # At 5,000 x 256 floats (5 MB) the default threshold would search exactly even after optimize():
    # lower it so the graph is what gets measured.
    with EdgeStore(tmp_path, full_scan_threshold_kb=100) as s:
        s.ensure_collection(dim, MODEL)
        for start in range(0, n, 1000):
            s.upsert([Point(uid(i), x[i].tolist(), {"breed": f"b{i % 20}"}) for i in range(start, start + 1000)])
        assert s.stats()["indexed_vectors"] == 0
        t0 = time.perf_counter()
        s.optimize()
        optimize_s = time.perf_counter() - t0
        stats = s.stats()
        assert stats["points"] == n and stats["indexed_vectors"] == n

        recalls = []
        for q in queries:
            approx = {h.id for h in s.query(q.tolist(), k=10)}
            exact = {h.id for h in s.query(q.tolist(), k=10, exact=True)}
            recalls.append(len(approx & exact) / 10)
        recall = float(np.mean(recalls))
        print(f"recall@10={recall:.3f} optimize={optimize_s:.2f}s")
        assert recall >= 0.98
