"""The contract (dogsearch/search/contract.py) on both engines, no mocks: every test runs on EdgeStore over the real
qdrant-edge engine, and on QdrantStore over qdrant-client's local mode (it speaks the same client API as a Qdrant
server; no server binary is here). What only one engine does is in test_edge.py and test_qdrant.py."""
from __future__ import annotations

import inspect
import json
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from dogsearch.search.contract import (
    CollectionInfo,
    CollectionMismatch,
    CollectionMissing,
    Engine,
    Hit,
    InvalidStoreInput,
    Point,
    PointNotFound,
    StoreError,
    VectorStore,
)
from dogsearch.search.edge import EdgeEngine, EdgeStore
from dogsearch.search.qdrant import QdrantEngine, QdrantStore

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
    """Opens QdrantStores on qdrant-client's local mode standing in for a server: one client per directory (one
    "server"), shared by the stores on it and closed with the last of them, so that a reopen reads the disk."""

    def __init__(self) -> None:
        self.clients: dict[str, tuple[QdrantClient, int]] = {}

    def __call__(self, path: Path, collection: str = "dogs") -> QdrantStore:
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


class _SharedClientStore(QdrantStore):
    def __init__(self, owner: LocalQdrant, key: str, client: QdrantClient, collection: str) -> None:
        self._owner, self._key = owner, key
        super().__init__(client, collection, close_client=False)

    def close(self) -> None:
        if not self._closed:
            self._owner.release(self._key)
        super().close()


# Local mode warns that it ignores payload indexes and search params (it always searches exactly).
_LOCAL_WARNINGS = pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")


ENGINES = ["edge", pytest.param("qdrant-client local", marks=_LOCAL_WARNINGS)]


@pytest.fixture(params=ENGINES)
def open_store(request):
    """open_store(path, collection="dogs") on each engine."""
    if request.param == "edge":
        yield EdgeStore
        return
    local = LocalQdrant()
    yield local
    for client, _ in local.clients.values():  # stores a test left open
        client.close()


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path: Path):
    """Each Engine, empty."""
    made = EdgeEngine(tmp_path / "vectors") if request.param == "edge" else QdrantEngine(QdrantClient(":memory:"))
    yield made
    made.close()


@pytest.fixture
def store(tmp_path: Path, open_store):
    s = open_store(tmp_path / "vectors")
    s.ensure_collection(4, MODEL)
    s.upsert(dog_points())
    yield s
    s.close()


def names(hits: list[Hit] | list[Point]) -> list[str]:
    by_id = {uid(n): n for n in [*DOGS, *REPORTS]}
    return [by_id[h.id] for h in hits]


# ---- basic CRUD --------------------------------------------------------------------------------------


def test_upsert_get_delete_count(store: VectorStore) -> None:
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


def test_upsert_of_same_id_replaces(store: VectorStore) -> None:
    store.upsert([Point(uid("rex"), [0.0, 1.0, 0.0, 0.0], {"breed": "boxer", "name": "Rex II"})])
    assert store.count() == 5
    assert store.get(uid("rex")).payload == {"breed": "boxer", "name": "Rex II"}  # whole payload replaced
    assert store.count({"breed": "pug"}) == 1
    assert names(store.query([0.0, 1.0, 0.0, 0.0], k=1)) == ["rex"]


def test_payloads_come_back_as_plain_json(store: VectorStore) -> None:
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


def test_ids_are_uuid_strings(store: VectorStore) -> None:
    upper = uid("rex").upper()
    assert store.get(upper).id == uid("rex")  # any UUID spelling, canonical form back
    for bad in ("rex", "12", ""):
        with pytest.raises(InvalidStoreInput):
            store.upsert([Point(bad, [1.0, 0.0, 0.0, 0.0], {})])
        with pytest.raises(ValueError):  # InvalidStoreInput is a ValueError too
            store.get(bad)


# ---- query ----------------------------------------------------------------------------------------------


def test_query_order_and_cosine_scores(store: VectorStore) -> None:
    hits = store.query([1.0, 0.0, 0.0, 0.0], k=5)
    assert names(hits) == ORDER
    assert [h.score for h in hits] == pytest.approx(SCORES, abs=1e-6)
    assert hits[0].payload == DOGS["rex"][1]
    # Cosine ignores length, and both query paths agree.
    assert names(store.query([7.0, 0.0, 0.0, 0.0], k=3)) == ORDER[:3]
    assert names(store.query([1.0, 0.0, 0.0, 0.0], k=5, exact=True)) == ORDER
    assert names(store.query([1.0, 0.0, 0.0, 0.0], k=2)) == ORDER[:2]
    assert len(store.query([1.0, 0.0, 0.0, 0.0], k=50)) == 5


def test_wrong_vectors_raise(store: VectorStore) -> None:
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


def test_filter_single_value(store: VectorStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": "pug"})) == ["rex", "max"]
    assert names(store.query(Q, k=5, filter={"breed": "pug"}, exact=True)) == ["rex", "max"]
    assert store.count({"breed": "beagle"}) == 2
    assert store.count({"breed": "corgi"}) == 0
    assert store.count({"age": 5}) == 2  # int
    assert store.count({"name": "Luna"}) == 1


def test_filter_list_is_any_of(store: VectorStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": ["husky", "pug"]})) == ["rex", "max", "luna"]
    assert store.count({"age": [3, 5]}) == 4
    assert store.count({"color": ("white", "fawn")}) == 3
    assert store.count({"breed": []}) == 0
    # Mixed kinds in one list work too (the engine's own any-of takes one kind only).
    assert store.count({"age": [3, "3"]}) == 2
    assert store.count({"good": [True, 1]}) == 2


def test_filter_fields_are_anded(store: VectorStore) -> None:
    assert names(store.query(Q, k=5, filter={"breed": "beagle", "color": "fawn"})) == ["odie"]
    assert names(store.query(Q, k=5, filter={"breed": ["pug", "beagle"], "age": 5})) == ["bella", "max"]
    assert store.count({"breed": "pug", "color": "white"}) == 0


def test_filter_on_user_fields(store: VectorStore) -> None:
    # "color", "age", "tags" are not indexed: filters still work, by scanning.
    assert names(store.query(Q, k=5, filter={"color": "black"})) == ["rex", "bella"]
    assert store.count({"tags": "loud"}) == 1  # a list field matches when any element does
    assert store.count({"missing_field": "x"}) == 0


def test_bool_filters_match_bools_only(store: VectorStore) -> None:
    # As in Qdrant, and unlike Python's True == 1: the int 1 on "max" is no match for True.
    assert names(store.query(Q, k=5, filter={"good": True})) == ["rex"]
    assert store.count({"good": False}) == 1
    assert store.count({"good": 1}) == 1


def test_unsupported_filter_values_raise(store: VectorStore) -> None:
    for bad in ({"age": 5.0}, {"age": None}, {"breed": {"x": 1}}, {"breed": ["pug", 1.5]}, {"age": 2**70}, {"": "x"}):
        with pytest.raises(InvalidStoreInput):
            store.count(bad)


def test_exclude(store: VectorStore) -> None:
    hits = store.query(Q, k=3, exclude=[uid("rex"), uid("max")])
    assert names(hits) == ["bella", "luna", "odie"]
    assert names(store.query(Q, k=5, filter={"breed": "pug"}, exclude=[uid("rex")])) == ["max"]
    assert names(store.query(Q, k=2, exclude=[uid("nobody")])) == ["rex", "bella"]


def test_similar(store: VectorStore) -> None:
    hits = store.similar(uid("rex"), k=2)
    assert names(hits) == ["bella", "max"]
    assert hits[0].score == pytest.approx(0.8, abs=1e-6)
    assert uid("rex") not in [h.id for h in store.similar(uid("rex"), k=10)]
    assert names(store.similar(uid("rex"), k=5, filter={"breed": "beagle"})) == ["bella", "odie"]
    with pytest.raises(PointNotFound):
        store.similar(uid("nobody"), k=3)


# ---- scroll -----------------------------------------------------------------------------------------------


def test_scroll_pages_through_everything_once(store: VectorStore) -> None:
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


def test_ordered_scroll_pages_newest_first_through_runs_of_one_time(tmp_path: Path, open_store) -> None:
    """Points sharing a time (runs longer than a page among them) are each shown once; a point without the field
    is in no page; points added between pages neither repeat nor hide the others."""
    store = open_store(tmp_path / "vectors")
    store.ensure_collection(4, MODEL, {"at": "datetime"})
    times = {i: f"2026-03-0{1 + i // 7}T10:00:00.{i // 3:06d}+00:00" for i in range(20)}  # runs of 3, by day
    store.upsert([Point(uid(i), [1.0, float(i), 0.0, 1.0], {"at": t, "odd": i % 2}) for i, t in times.items()])
    store.upsert([Point(uid("undated"), [1.0, 0.0, 0.0, 0.0], {"odd": 1})])
    expected = sorted(times, key=lambda i: times[i], reverse=True)

    def all_pages(limit: int, order_by: str = "-at", between=None, **kwargs) -> list[int]:
        seen, offset = [], None
        for _ in range(50):
            page, offset = store.scroll(limit=limit, offset=offset, order_by=order_by, **kwargs)
            seen += [_index(p.id) for p in page]
            if offset is None:
                return seen
            if between:
                between()
        raise AssertionError("no last page")

    for limit in (1, 2, 3, 4, 100):
        got = all_pages(limit)
        assert sorted(got) == sorted(times) and len(got) == 20, limit  # each once, the undated one in none
        assert [times[i] for i in got] == [times[i] for i in expected], limit  # newest first
    assert [times[i] for i in all_pages(4, "at")] == [times[i] for i in reversed(expected)]
    assert sorted(all_pages(2, filter={"odd": 1})) == [i for i in range(20) if i % 2]

    added = iter(range(100, 103))

    def churn() -> None:  # a new point, the newest, between pages
        new = next(added, 200)
        store.upsert([Point(uid(new), [1.0, 0.0, 0.0, 1.0], {"at": "2026-03-09T00:00:00+00:00"})])

    got = all_pages(5, between=churn)
    assert len(got) == len(set(got))  # nothing twice
    assert set(range(20)) <= set(got)  # nothing older hidden by what came meanwhile

    if isinstance(store, EdgeStore):  # as a Qdrant server does; its local mode orders by any field
        with pytest.raises(InvalidStoreInput):
            store.scroll(limit=2, order_by="-odd")  # no datetime index
    with pytest.raises(InvalidStoreInput):
        store.scroll(limit=2, order_by="-at", offset=uid(1))  # an id is no page's `next` here
    with pytest.raises(InvalidStoreInput):
        store.scroll(limit=2, order_by="at; drop")
    store.close()


def _index(point_id: str) -> int:
    return next(i for i in [*range(20), *range(100, 103), 200] if uid(i) == point_id)


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
        assert s2.collection_info == CollectionInfo(dim=4, model=MODEL)
        assert s2.count() == 5
        assert s2.get(uid("late")).payload["name"] == "Late"
        assert s2.get(uid("odie")) is None
        assert s2.query(Q, k=10) == before
        assert s2.query(Q, k=10, filter={"breed": "pug"}) == before_filtered
        s2.ensure_collection(4, MODEL)  # idempotent on a reopened store
        assert s2.count() == 5


def test_collection_mismatch_loses_nothing(store: VectorStore, tmp_path: Path, open_store) -> None:
    store.ensure_collection(4, MODEL)  # idempotent
    with pytest.raises(CollectionMismatch):
        store.ensure_collection(8, MODEL)
    with pytest.raises(CollectionMismatch, match=r"holds dim=4 .*asked for dim=4 model='another-model'.*reindex"):
        store.ensure_collection(4, "another-model")  # the message says what is held, what was asked, the way out
    assert store.collection_info == CollectionInfo(dim=4, model=MODEL)
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
        assert s.unavailable() is None  # the engine serves; only the collection is missing
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
            lambda: s.retrieve([uid("rex")]),
            lambda: s.set_payload([uid("rex")], {"a": 1}),
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


def test_closed_store_raises(tmp_path: Path, open_store) -> None:
    s = open_store(tmp_path)
    s.ensure_collection(2, MODEL)
    assert s.unavailable() is None
    s.close()
    s.close()  # idempotent
    assert "closed" in s.unavailable()
    with pytest.raises(StoreError, match="closed"):
        s.count()
    with pytest.raises(StoreError, match="closed"):
        s.ensure_collection(2, MODEL)


def test_concurrent_use_from_threads(store: VectorStore) -> None:
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


def test_both_engines_have_every_method_of_the_contract() -> None:
    for protocol, classes in ((VectorStore, (EdgeStore, QdrantStore)), (Engine, (EdgeEngine, QdrantEngine))):
        wanted = {name for name in vars(protocol) if not name.startswith("_")} | set(protocol.__annotations__)
        for cls in classes:
            assert wanted <= set(dir(cls)), (cls.__name__, wanted - set(dir(cls)))
            for name in wanted - {"builds_own_index", "collection_info"}:
                # the same parameters, in the same order and with the same defaults
                ours = list(inspect.signature(getattr(cls, name)).parameters.values())
                theirs = list(inspect.signature(getattr(protocol, name)).parameters.values())
                assert [(p.name, p.default) for p in ours] == [(p.name, p.default) for p in theirs], (cls, name)
    assert EdgeStore.builds_own_index is False and QdrantStore.builds_own_index is True


# ---- set_payload --------------------------------------------------------------------------------------------


def test_set_payload_merges_keys_and_keeps_the_vector(store: VectorStore) -> None:
    before = store.get(uid("rex"), with_vector=True)
    store.set_payload([uid("rex"), uid("max").upper()], {"color": "red", "vaccinated": True, "nested": {"a": [1]}})
    rex = store.get(uid("rex"), with_vector=True)
    assert rex.payload == DOGS["rex"][1] | {"color": "red", "vaccinated": True, "nested": {"a": [1]}}
    assert rex.vector == pytest.approx(before.vector)
    assert store.get(uid("max")).payload == DOGS["max"][1] | {"color": "red", "vaccinated": True, "nested": {"a": [1]}}
    assert store.get(uid("bella")).payload == DOGS["bella"][1]  # the others stay
    assert store.count({"color": "red"}) == 2 and store.count({"vaccinated": True}) == 2
    assert names(store.query(Q, k=5)) == ORDER  # vectors untouched
    store.set_payload([uid("rex")], {"color": "blue"})  # a key set again is replaced
    assert store.get(uid("rex")).payload["color"] == "blue"
    store.set_payload([], {"color": "green"})  # nothing to do
    store.set_payload([uid("rex")], {})
    assert store.count({"color": "green"}) == 0 and store.get(uid("rex")).payload["color"] == "blue"


def test_set_payload_on_an_unknown_id_changes_nothing(store: VectorStore) -> None:
    with pytest.raises(PointNotFound, match=uid("nobody")):
        store.set_payload([uid("rex"), uid("nobody"), uid("max")], {"color": "red"})
    assert store.count({"color": "red"}) == 0
    assert store.get(uid("rex")).payload == DOGS["rex"][1]
    for ids, payload in (([uid("rex")], {"raw": b"bytes"}), ([uid("rex")], {"x": float("nan")}),
                         (["rex"], {"a": 1}), (uid("rex"), {"a": 1}), ([uid("rex")], ["not", "an", "object"])):
        with pytest.raises(InvalidStoreInput):
            store.set_payload(ids, payload)
    assert store.get(uid("rex")).payload == DOGS["rex"][1]


# ---- $not and $empty ------------------------------------------------------------------------------------------


def test_not_leaves_out_what_matches_any_of_its_conditions(store: VectorStore) -> None:
    assert names(store.query(Q, k=5, filter={"$not": {"breed": "pug"}})) == ["bella", "luna", "odie"]
    # several fields under $not: a point matching any of them is left out
    assert names(store.query(Q, k=5, filter={"$not": {"breed": "pug", "color": "black"}})) == ["luna", "odie"]
    assert store.count({"$not": {"breed": ["pug", "husky"]}}) == 2
    assert names(store.query(Q, k=5, filter={"color": "fawn", "$not": {"age": 3}})) == ["max"]
    assert store.count({"$not": {"good": True}}) == 4  # a bool still matches bools only
    assert store.count({"$not": {"breed": []}}) == 5  # "any of nothing" leaves nothing out
    assert store.count({"$not": {}}) == 5
    assert names(store.query(Q, k=5, filter={"$not": {"breed": "beagle"}}, exclude=[uid("rex")])) == ["max", "luna"]
    assert names(store.similar(uid("rex"), k=5, filter={"$not": {"breed": "beagle"}})) == ["max", "luna"]
    page, _ = store.scroll(limit=10, filter={"$not": {"color": ["black", "fawn"]}})
    assert names(page) == ["luna"]


def test_empty_matches_missing_null_and_empty_lists(store: VectorStore) -> None:
    store.upsert([Point(uid("nil"), [0.0, 1.0, 0.0, 0.0], {"breed": "mutt", "age": None, "tags": []}),
                  Point(uid("blank"), [0.0, 1.0, 1.0, 0.0], {"breed": "mutt", "age": 0, "tags": ["x"], "name": ""})])
    assert store.count({"$empty": ["age"]}) == 2  # luna has none, nil's is null; blank's 0 is a value
    assert store.count({"$empty": ["tags"]}) == 5  # all but luna and blank (nil's is [])
    assert store.count({"$empty": ["age", "name"]}) == 1  # both: nil ("" is a value)
    assert store.count({"$empty": ["age"], "breed": "husky"}) == 1
    assert store.count({"$not": {"$empty": ["tags"]}}) == 2  # has tags: luna and blank
    assert names(store.query(Q, k=5, filter={"$not": {"$empty": ["tags"]}, "breed": "husky"})) == ["luna"]
    assert store.count({"$empty": []}) == 7


@pytest.mark.parametrize(("bad", "reason"), [
    ("breed", "an object of field -> value"),
    (["breed", "pug"], "an object of field -> value"),
    ({"": "x"}, "non-empty string"),
    ({1: "x"}, "non-empty string"),
    ({"age": 5.0}, "'age': values must be str, int"),
    ({"age": None}, "'age': values must be str, int"),
    ({"age": 2**70}, "64-bit"),
    ({"breed": {"x": 1}}, "'breed': an object value is"),
    ({"breed": ["pug", 1.5]}, "got 1.5"),
    ({"$or": {"breed": "pug"}}, "unknown operator '\\$or'"),
    ({"$not": "pug"}, "\\$not: an object"),
    ({"$not": {"$not": {"breed": "pug"}}}, "cannot be nested"),
    ({"$not": {"age": 1.5}}, "filter \\$not on 'age'"),
    ({"$empty": "name"}, "\\$empty: a list of field names"),
    ({"$empty": ["name", ""]}, "non-empty string"),
    ({"$empty": ["$not"]}, "unknown operator"),
])
def test_bad_filters_say_what_is_wrong_before_the_engine_sees_them(store: VectorStore, bad, reason) -> None:
    for call in (lambda: store.count(bad), lambda: store.query(Q, k=1, filter=bad),
                 lambda: store.scroll(limit=1, filter=bad), lambda: store.similar(uid("rex"), k=1, filter=bad)):
        with pytest.raises(InvalidStoreInput, match=reason):
            call()
    with pytest.raises(InvalidStoreInput, match="point id must be a UUID"):
        store.query(Q, k=1, exclude=["rex"])


# ---- where and when: geo radius and datetime range ---------------------------------------------------------------

# Places and times of reports, with indexes (geo, datetime) on one store and none on the other: the same answers.
REPORTS = {
    "berlin": ({"lat": 52.52, "lon": 13.405}, "2026-11-30T17:05:00+00:00"),
    "potsdam": ({"lat": 52.39, "lon": 13.065}, "2026-11-29T08:00:00+00:00"),  # 27 km from Berlin
    "hamburg": ({"lat": 53.551, "lon": 9.993}, "2026-11-01T00:00:00+00:00"),  # 255 km
    "fiji": ({"lat": -17.0, "lon": 179.9}, "2025-06-01T12:00:00+00:00"),  # across the antimeridian from Samoa
    "nowhere": (None, None),  # a dog without a place or a time
}
BERLIN = {"lat": 52.52, "lon": 13.405}


def report_points() -> list[Point]:
    return [Point(uid(n), [1.0, float(i), 0.0, 0.0], {k: v for k, v in (("location", where), ("seen_at", when))
                                                       if v is not None})
            for i, (n, (where, when)) in enumerate(REPORTS.items())]


@pytest.fixture(params=[{}, {"location": "geo", "seen_at": "datetime"}], ids=["scan", "indexed"])
def reports(request, tmp_path: Path, open_store):
    s = open_store(tmp_path / "vectors", "reports")
    s.ensure_collection(4, MODEL, request.param)
    s.upsert(report_points())
    yield s
    s.close()


def near(radius_km: float, at: dict = BERLIN) -> dict:
    return {"location": {"$near": {**at, "radius_km": radius_km}}}


def test_geo_radius_keeps_the_points_within_so_many_km(reports: VectorStore) -> None:
    assert names(reports.query(Q, k=5, filter=near(10))) == ["berlin"]
    assert names(reports.query(Q, k=5, filter=near(30))) == ["berlin", "potsdam"]
    assert names(reports.query(Q, k=5, filter=near(300))) == ["berlin", "potsdam", "hamburg"]
    assert reports.count(near(20_000)) == 4  # every point that has a place, none without
    # on the sphere: 0.2 degrees of longitude apart across the antimeridian is 21 km at 17 degrees south
    assert names(reports.query(Q, k=5, filter=near(25, {"lat": -17.0, "lon": -179.9}))) == ["fiji"]
    assert reports.count({"$not": near(30)}) == 3  # Hamburg, Fiji and the dog without a place
    page, _ = reports.scroll(limit=10, filter=near(30))
    assert sorted(names(page)) == ["berlin", "potsdam"]
    assert names(reports.similar(uid("berlin"), k=5, filter=near(300))) == ["potsdam", "hamburg"]


def test_datetime_range_keeps_the_points_seen_between(reports: VectorStore) -> None:
    since = {"seen_at": {"$gte": "2026-11-29T08:00:00Z"}}
    assert names(reports.query(Q, k=5, filter=since)) == ["berlin", "potsdam"]  # the bound itself is in
    # bounds in other zones, or without one (UTC), mean the same instants
    assert reports.count({"seen_at": {"$gte": "2026-11-29T09:00:00+01:00", "$lte": "2026-11-30T17:05"}}) == 2
    assert reports.count({"seen_at": {"$lte": "2026-11-29T07:59:59Z"}}) == 2  # hamburg, fiji
    assert reports.count({"seen_at": {"$gte": "2026-01-01", "$lte": "2026-11-15"}}) == 1  # a date is its midnight
    assert reports.count({"$not": since}) == 3
    # place and time together, and with an ordinary match
    assert names(reports.query(Q, k=5, filter={**near(300), "seen_at": {"$lte": "2026-11-29T12:00:00Z"}})) == [
        "potsdam", "hamburg"]


@pytest.mark.parametrize(("bad", "reason"), [
    ({"location": {"$near": {"lat": 91, "lon": 0, "radius_km": 1}}}, "latitude -90..90"),
    ({"location": {"$near": {"lat": 0, "lon": 181, "radius_km": 1}}}, "longitude -180..180"),
    ({"location": {"$near": {"lat": 0, "lon": 0, "radius_km": 0}}}, "radius_km above 0"),
    ({"location": {"$near": {"lat": 0, "lon": 0, "radius_km": 1e9}}}, "at most 20100"),
    ({"location": {"$near": {"lat": 0, "lon": 0, "radius_km": float("nan")}}}, "finite numbers"),
    ({"location": {"$near": {"lat": "0", "lon": 0, "radius_km": 1}}}, "finite numbers"),
    ({"location": {"$near": {"lat": 0, "lon": 0}}}, "radius_km"),
    ({"location": {"$near": [0, 0, 1]}}, "radius_km"),
    ({"seen_at": {"$gte": "yesterday"}}, "ISO 8601"),
    ({"seen_at": {"$gte": 5}}, "ISO 8601"),
    ({"seen_at": {"$gte": "2026-12-01", "$lte": "2026-11-01"}}, "is after"),
    ({"seen_at": {}}, "an object value is"),
    ({"seen_at": {"$gte": "2026-12-01", "$near": {}}}, "an object value is"),
    ({"$not": {"seen_at": {"$lt": "2026-12-01"}}}, "an object value is"),
])
def test_bad_places_and_times_say_what_is_wrong(reports: VectorStore, bad, reason) -> None:
    for call in (lambda: reports.count(bad), lambda: reports.query(Q, k=1, filter=bad)):
        with pytest.raises(InvalidStoreInput, match=reason):
            call()


# ---- payload indexes ---------------------------------------------------------------------------------------------


def test_indexes_asked_for_are_built_on_new_and_existing_collections(tmp_path: Path, open_store) -> None:
    with open_store(tmp_path / "vectors") as s:
        s.ensure_collection(4, MODEL, {"breed": "keyword"})
        s.upsert(dog_points())
        # An existing collection: the indexes it lacks are added, again and again without harm.
        indexes = {"breed": "keyword", "name": "keyword", "age": "integer", "good": "bool"}
        s.ensure_collection(4, MODEL, indexes)
        s.ensure_collection(4, MODEL, indexes)
        s.ensure_collection(4, MODEL)  # none asked for: the existing ones stay
        assert store_answers(s)
    with open_store(tmp_path / "vectors") as s:  # and after a reopen
        s.ensure_collection(4, MODEL, indexes | {"color": "keyword"})
        assert store_answers(s)
        with pytest.raises(CollectionMismatch):
            s.ensure_collection(4, "another-model", {"tags": "keyword"})


def store_answers(s: VectorStore) -> bool:
    """The filters on indexed fields answer as without the indexes."""
    assert names(s.query(Q, k=5, filter={"breed": "pug"})) == ["rex", "max"]
    assert s.count({"age": 5}) == 2 and s.count({"good": True}) == 1 and s.count({"name": "Luna"}) == 1
    assert s.count({"$not": {"breed": "pug"}}) == 3
    return True


@pytest.mark.parametrize(("indexes", "reason"), [
    ({"breed": "text"}, "kind must be one of keyword, integer"),
    ({"": "keyword"}, "index field"),
    ({"$not": "keyword"}, "index field"),
    (["breed"], "indexes: an object"),
])
def test_bad_indexes_are_refused_and_create_nothing(tmp_path: Path, open_store, indexes, reason) -> None:
    with open_store(tmp_path / "vectors") as s:
        with pytest.raises(InvalidStoreInput, match=reason):
            s.ensure_collection(4, MODEL, indexes)
        assert s.collection_info is None


# ---- the engine: open, swap, drop (what reindex does) ------------------------------------------------------------


def fill(engine, name: str, dim: int, model: str, n: int) -> None:
    with engine.open(name) as s:
        s.ensure_collection(dim, model, {"breed": "keyword"})
        s.upsert([Point(uid(f"{model}-{i}"), [1.0] + [float(i)] * (dim - 1), {"i": i}) for i in range(n)])


def contents(engine, name: str) -> tuple[CollectionInfo | None, int]:
    with engine.open(name) as s:
        info = s.collection_info
        return info, (s.count() if info else 0)


def test_swap_puts_staging_in_place_and_leaves_the_old_for_drop(engine) -> None:
    fill(engine, "dogs", 2, "m1", 3)
    old = (CollectionInfo(2, "m1"), 3)
    for round, (model, n) in enumerate((("m2", 4), ("m3", 5), ("m2", 6))):
        staging = f"dogs__{model}"
        fill(engine, staging, 3, model, n)
        left = engine.swap("dogs", staging)
        assert contents(engine, "dogs") == (CollectionInfo(3, model), n)
        assert left is not None or round == 0  # only a first swap of a plain server collection leaves nothing
        if left is not None:
            assert contents(engine, left) == old  # the old contents, until dropped
            engine.drop(left)
            engine.drop(left)  # nothing left: nothing to do
        with engine.open("dogs") as s:  # writes go where reads come from
            s.upsert([Point(uid("late"), [0.0, 1.0, 0.0], {"breed": "pug"})])
            assert s.count({"breed": "pug"}) == 1 and s.get(uid("late")) is not None
        assert contents(engine, "dogs") == (CollectionInfo(3, model), n + 1)
        old = (CollectionInfo(3, model), n + 1)
    engine.drop("dogs")
    assert contents(engine, "dogs") == (None, 0)


def test_swap_into_a_name_that_holds_nothing(engine) -> None:
    fill(engine, "staging", 2, MODEL, 2)
    assert engine.swap("dogs", "staging") is None
    assert contents(engine, "dogs") == (CollectionInfo(2, MODEL), 2)


def test_swap_refuses_what_is_not_a_complete_collection(engine) -> None:
    fill(engine, "dogs", 2, MODEL, 2)
    engine.open("empty").close()  # opened, never made
    for staging in ("nothing", "empty"):
        with pytest.raises(CollectionMissing):
            engine.swap("dogs", staging)
    with pytest.raises(InvalidStoreInput):
        engine.swap("dogs", "dogs")
    with pytest.raises(InvalidStoreInput):
        engine.swap("dogs", "../escape")
    with pytest.raises(InvalidStoreInput):
        engine.drop("../escape")
    assert contents(engine, "dogs") == (CollectionInfo(2, MODEL), 2)
    engine.drop("nothing")  # nothing to do
