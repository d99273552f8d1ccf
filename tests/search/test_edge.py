"""What only the embedded engine does: one store per folder, an HNSW graph built by optimize(), payload indexes kept in
the shard, and folders exchanged by swap(). The behaviour shared with a Qdrant server is in test_contract.py."""
from __future__ import annotations

import ctypes
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import qdrant_edge as qe

from dogsearch.search import edge
from dogsearch.search.contract import CollectionInfo, InvalidStoreInput, Point, StoreError
from dogsearch.search.edge import EdgeEngine, EdgeStore

MODEL = "test-model@1"


def uid(name: str | int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"dog:{name}"))


def test_one_edge_store_per_directory(tmp_path: Path) -> None:
    # Edge only: the embedded engine's files belong to one process; a server takes any number of clients.
    with EdgeStore(tmp_path, "dogs") as dogs:
        dogs.ensure_collection(2, MODEL)
        dogs.upsert([Point(uid("a"), [1.0, 0.0], {})])
        with pytest.raises(StoreError, match="already open"):
            EdgeStore(tmp_path, "dogs")
    with EdgeStore(tmp_path, "dogs") as dogs:  # free again once closed
        assert dogs.count() == 1


def schema(store: EdgeStore) -> dict[str, qe.PayloadSchemaType]:
    return {field: info.data_type for field, info in store._shard.info().payload_schema.items()}


def test_indexes_live_in_the_shard_and_are_added_to_an_existing_one(tmp_path: Path) -> None:
    with EdgeStore(tmp_path) as s:
        s.ensure_collection(2, MODEL)
        assert schema(s) == {}  # none unless asked for
        s.upsert([Point(uid(i), [1.0, float(i)], {"breed": f"b{i % 3}", "age": i}) for i in range(10)])
        s.ensure_collection(2, MODEL, {"breed": "keyword", "age": "integer"})
        assert schema(s) == {"breed": qe.PayloadSchemaType.Keyword, "age": qe.PayloadSchemaType.Integer}
        assert s.count({"breed": "b1"}) == 3 and s.count({"age": [1, 2, 3]}) == 3
    with EdgeStore(tmp_path) as s:  # kept across a reopen; another kind asked for is rebuilt as that kind
        assert schema(s) == {"breed": qe.PayloadSchemaType.Keyword, "age": qe.PayloadSchemaType.Integer}
        s.ensure_collection(2, MODEL, {"age": "float", "name": "keyword"})
        assert schema(s) == {"breed": qe.PayloadSchemaType.Keyword, "age": qe.PayloadSchemaType.Float,
                             "name": qe.PayloadSchemaType.Keyword}


def test_a_new_collection_gets_its_indexes_before_meta_json(tmp_path: Path, monkeypatch) -> None:
    # meta.json is written last: an ensure_collection() that dies while building indexes leaves no collection.
    calls = []
    real = qe.UpdateOperation.create_field_index

    def failing(field, kind):
        calls.append(field)
        if field == "name":
            raise RuntimeError("disk full")
        return real(field, kind)

    monkeypatch.setattr(edge.qe.UpdateOperation, "create_field_index", failing)
    with EdgeStore(tmp_path) as s, pytest.raises(StoreError, match="disk full"):
        s.ensure_collection(2, MODEL, {"breed": "keyword", "name": "keyword"})
    assert not (tmp_path / "dogs" / "meta.json").exists()
    monkeypatch.undo()
    with EdgeStore(tmp_path) as s:
        assert s.collection_info is None
        s.ensure_collection(2, MODEL, {"breed": "keyword", "name": "keyword"})  # the leftover shard is reused
        assert set(schema(s)) == {"breed", "name"}


def test_the_engine_refuses_to_drop_or_swap_an_open_collection(tmp_path: Path) -> None:
    engine = EdgeEngine(tmp_path)
    for name in ("dogs", "staging"):
        with engine.open(name) as s:
            s.ensure_collection(2, name)
    with engine.open("dogs"):
        with pytest.raises(StoreError, match="already open"):
            engine.drop("dogs")
        with pytest.raises(StoreError, match="already open"):
            engine.swap("dogs", "staging")
    with engine.open("staging"), pytest.raises(StoreError, match="already open"):
        engine.swap("dogs", "staging")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dogs", "staging"]
    with engine.open("dogs") as s:
        assert s.collection_info == CollectionInfo(2, "dogs")


@pytest.mark.parametrize("renameat2", ["available", "missing", "failing"])
def test_swap_exchanges_the_folders(tmp_path: Path, monkeypatch, renameat2: str) -> None:
    if renameat2 != "available":
        class NoRenameat2:
            def __init__(self, *args, **kwargs) -> None:
                if renameat2 == "missing":
                    raise OSError("no libc here")

            def __getattr__(self, name):
                return lambda *args: -1  # as on a file system without RENAME_EXCHANGE

        monkeypatch.setattr(ctypes, "CDLL", NoRenameat2)
    engine = EdgeEngine(tmp_path)
    for name, n in (("dogs", 2), ("dogs__new", 3)):
        with engine.open(name) as s:
            s.ensure_collection(2, name)
            s.upsert([Point(uid(i), [1.0, float(i)], {}) for i in range(n)])
    assert engine.swap("dogs", "dogs__new") == "dogs__new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dogs", "dogs__new"]  # nothing left aside
    assert (tmp_path / "dogs" / "meta.json").read_text() == '{"dim": 2, "model": "dogs__new"}'
    with engine.open("dogs") as s, engine.open("dogs__new") as old:
        assert (s.count(), old.count()) == (3, 2)
    engine.drop("dogs__new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dogs"]


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


def test_a_filter_that_keeps_few_points_still_finds_the_nearest_of_them(tmp_path: Path) -> None:
    # A 40 km radius keeps about 1 % of dogs spread over central Europe: in the plain HNSW walk the graph falls
    # apart into pieces the filter cuts off (recall@10 0.83 measured here), ACORN walks around them.
    rng = np.random.default_rng(7)
    n, dim = 6000, 64
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    lat, lon = rng.uniform(47, 55, n), rng.uniform(6, 15, n)
    with EdgeStore(tmp_path, full_scan_threshold_kb=20) as s:  # the graph, not the exact scan, on small data
        s.ensure_collection(dim, MODEL, {"location": "geo"})
        s.upsert([Point(uid(i), x[i].tolist(), {"location": {"lat": float(lat[i]), "lon": float(lon[i])}})
                  for i in range(n)])
        s.optimize()
        recalls = []
        for _ in range(30):
            q = rng.standard_normal(dim)
            near = {"location": {"$near": {"lat": float(rng.uniform(48, 54)), "lon": float(rng.uniform(7, 14)),
                                           "radius_km": 40}}}
            exact = {h.id for h in s.query(q.tolist(), k=10, filter=near, exact=True)}
            approx = {h.id for h in s.query(q.tolist(), k=10, filter=near)}
            recalls.append(len(approx & exact) / max(1, len(exact)))
        assert float(np.mean(recalls)) >= 0.97


def test_a_breed_that_keeps_few_points_is_found_by_the_plain_walk(tmp_path: Path) -> None:
    # A match on an indexed value gets no ACORN (it cost 20-25x the plain walk at 300,000 points): the engine links
    # each value's points in the graph, so the plain walk finds them where a radius of as few points falls apart.
    rng = np.random.default_rng(11)
    n, dim, breeds = 6000, 64, 40
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    breed = rng.integers(0, breeds, n)
    with EdgeStore(tmp_path, full_scan_threshold_kb=20) as s:  # the graph, not the exact scan, on small data
        s.ensure_collection(dim, MODEL, {"breed": "keyword"})
        s.upsert([Point(uid(i), x[i].tolist(), {"breed": f"b{breed[i]}"}) for i in range(n)])
        s.optimize()
        recalls = []
        for _ in range(30):
            q = rng.standard_normal(dim)
            one = {"breed": f"b{rng.integers(0, breeds)}"}  # ~150 points, 2.5 %
            exact = {h.id for h in s.query(q.tolist(), k=10, filter=one, exact=True)}
            approx = {h.id for h in s.query(q.tolist(), k=10, filter=one)}
            recalls.append(len(approx & exact) / max(1, len(exact)))
        assert float(np.mean(recalls)) >= 0.97


def test_writes_are_refused_while_the_disk_has_no_room_and_reads_go_on(tmp_path):
    # On a full disk the engine hangs in its write-ahead log: the store refuses a write before it starts.
    from dogsearch.core.errors import StorageFull

    store = EdgeStore(tmp_path, min_free_bytes=0)
    store.ensure_collection(3, "m")
    store.upsert([Point(id=str(uuid.UUID(int=1)), vector=[1.0, 0.0, 0.0], payload={"a": 1})])
    store.close()
    cramped = EdgeStore(tmp_path, min_free_bytes=1 << 62)
    for write in (lambda: cramped.upsert([Point(id=str(uuid.UUID(int=2)), vector=[0.0, 1.0, 0.0], payload={})]),
                  lambda: cramped.delete([str(uuid.UUID(int=1))]),
                  lambda: cramped.set_payload([str(uuid.UUID(int=1))], {"b": 2})):
        with pytest.raises(StorageFull, match="disk is full"):
            write()
    assert cramped.count() == 1 and cramped.get(str(uuid.UUID(int=1))).payload == {"a": 1}
    cramped.close()
    with pytest.raises(StorageFull):
        EdgeStore(tmp_path / "other", min_free_bytes=1 << 62).ensure_collection(3, "m")


def test_int8_quantisation_is_built_and_rescored_and_kept_on_reopen(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n, dim = 3000, 64
    x = rng.standard_normal((n, dim)).astype(np.float32)
    queries = x[:30] + 0.1 * rng.standard_normal((30, dim)).astype(np.float32)

    def quantized_files() -> list[Path]:
        return list((tmp_path / "dogs").rglob("quantized.data"))

    with EdgeStore(tmp_path, quantization="int8", oversampling=3.0, full_scan_threshold_kb=10) as s:
        s.ensure_collection(dim, MODEL)
        s.upsert([Point(uid(i), x[i].tolist(), {}) for i in range(n)])
        s.optimize()
        assert quantized_files(), "optimize() built no int8 copy"
        before = [[h.id for h in s.query(q.tolist(), k=10)] for q in queries]
        exact = [{h.id for h in s.query(q.tolist(), k=10, exact=True)} for q in queries]
    recall = np.mean([len(set(b) & e) / 10 for b, e in zip(before, exact, strict=True)])
    assert recall >= 0.95
    # Reopened with the default (no quantisation): the collection keeps what it was created with.
    with EdgeStore(tmp_path) as s:
        assert [[h.id for h in s.query(q.tolist(), k=10)] for q in queries] == before
    assert quantized_files()


def test_a_float32_collection_gets_int8_at_its_next_optimize(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    with EdgeStore(tmp_path) as s:
        s.ensure_collection(16, MODEL)
        s.upsert([Point(uid(i), x[i].tolist(), {"i": i}) for i in range(400)])
        s.optimize()
        before = [h.id for h in s.query(x[0].tolist(), k=5)]
    assert not list(tmp_path.rglob("quantized.data"))
    with EdgeStore(tmp_path, quantization="int8") as s:
        assert [h.id for h in s.query(x[0].tolist(), k=5)] == before  # searched as it was until optimize()
        s.optimize()
        assert list(tmp_path.rglob("quantized.data"))
        assert [h.id for h in s.query(x[0].tolist(), k=5)][0] == before[0] == uid(0)
        assert s.count() == 400 and s.retrieve([uid(7)])[0].payload == {"i": 7}


@pytest.mark.parametrize("options", [{"quantization": "int4"}, {"oversampling": 0.5}, {"hnsw_ef": 0}])
def test_bad_store_options_are_refused(tmp_path: Path, options: dict) -> None:
    with pytest.raises(InvalidStoreInput):
        EdgeStore(tmp_path, **options)
    EdgeStore(tmp_path).close()  # the refused store left the folder unlocked


def test_the_search_service_settings_choose_the_embedded_engines_index(tmp_path: Path, monkeypatch) -> None:
    from dogsearch.search.engine import open_engine
    from dogsearch.services.search.settings import SearchSettings

    for key, value in {"QUANTIZATION": "int8", "OVERSAMPLING": "3", "HNSW_EF": "128"}.items():
        monkeypatch.setenv(f"DOGSEARCH_SEARCH_{key}", value)
    settings = SearchSettings(data_dir=tmp_path)
    engine = open_engine(**settings.engine_options())
    with engine.open("dogs") as s:
        assert s.search_params().hnsw_ef == 128 and s.search_params().quantization.oversampling == 3.0
        s.ensure_collection(4, MODEL)
        s.upsert([Point(uid(i), [1.0, float(i), 0.5, -1.0], {}) for i in range(300)])  # past the 1 KB to index
        s.optimize()
    assert list(tmp_path.rglob("quantized.data"))


@pytest.mark.parametrize("env", [{"QUANTIZATION": "int4"}, {"OVERSAMPLING": "0.9"}, {"HNSW_EF": "0"}])
def test_bad_index_settings_fail_at_start(monkeypatch, env: dict) -> None:
    from pydantic import ValidationError

    from dogsearch.services.search.settings import SearchSettings

    for key, value in env.items():
        monkeypatch.setenv(f"DOGSEARCH_SEARCH_{key}", value)
    with pytest.raises(ValidationError):
        SearchSettings()
