"""The embedded engine: each collection of dog embeddings in a qdrant-edge shard of its own, in this process.
EdgeStore and EdgeEngine implement dogsearch/search/contract.py's VectorStore and Engine.

Layout on disk, under ``<path>/<collection>/``:
  shard/      the engine's data (segments + write-ahead log; payload indexes included)
  meta.json   {"dim", "model"}, written last by ensure_collection(), so a reopen knows what was created
  .lock       flock'ed while open: one EdgeStore per directory, across threads and processes
"""
from __future__ import annotations

import ctypes
import fcntl
import json
import os
import shutil
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import qdrant_edge as qe

from dogsearch.search.base import (
    StoreBase,
    check_at_least_one,
    check_collection_name,
    check_spec,
    check_vector,
    clean_payload,
    missing_ids,
    point_id,
    point_ids,
)
from dogsearch.search.contract import (
    NO_INDEXES,
    QUANTIZATIONS,
    CollectionInfo,
    CollectionMismatch,
    CollectionMissing,
    Hit,
    IndexKind,
    InvalidStoreInput,
    Point,
    Quantization,
    StoreError,
    StoreFull,
    store_error,
)
from dogsearch.search.filters import (
    Condition,
    Filter,
    FilterSpec,
    GeoRadius,
    HasId,
    IsEmpty,
    TimeRange,
    excluding,
    needs_acorn,
    parse_filter,
)
from dogsearch.search.order import ordered_page

# Free disk the store keeps for the engine's write-ahead log and segments (a write would hang on a full disk).
MIN_FREE_BYTES = 64 << 20
# Engine defaults, spelled out because HnswIndexConfig requires them.
_HNSW_M = 16
_HNSW_EF_CONSTRUCT = 100
# Let optimize() build an HNSW graph whatever the collection size (the engine's default skips
# segments under ~10 MB); full_scan_threshold_kb still decides when the graph is worth using.
_INDEXING_THRESHOLD_KB = 1
# int8 quantisation maps this central share of the values onto its 256 steps (Qdrant's recommended 0.99): the
# outliers past it are clipped rather than stretching every step.
_INT8_QUANTILE = 0.99
_INDEX_KINDS: dict[IndexKind, qe.PayloadSchemaType] = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
    "geo": qe.PayloadSchemaType.Geo,
    "datetime": qe.PayloadSchemaType.Datetime,
}
_RENAME_EXCHANGE = 2


class EdgeStore(StoreBase):
    """Thread-safe: every engine call runs under one lock. That costs no parallelism, because
    qdrant-edge holds the GIL for the whole of each call anyway (optimize() included)."""

    builds_own_index = False  # optimize() builds the HNSW graph

    def __init__(
        self,
        path: Path | str,
        collection: str = "dogs",
        *,
        hnsw_ef: int | None = None,
        full_scan_threshold_kb: int = 10_000,
        min_free_bytes: int = MIN_FREE_BYTES,
        quantization: Quantization = "none",
        oversampling: float = 2.0,
    ) -> None:
        """Open (creating directories) the store at ``path``; an existing collection is loaded as it was.

        hnsw_ef: HNSW search breadth; None is the engine's default (ef_construct, 100).
        full_scan_threshold_kb: segments, and filtered candidate sets, holding fewer vectors than this many KB
            are searched exactly even after optimize() (10,000 KB, the engine's default, is about 6,500 vectors
            of 384 floats). Lower it only to measure the graph on small data: in the graph, a filter on an
            unindexed field that matches few points finds few of them. Fixed when the collection is created
            (the engine keeps it); ignored on reopen.
        min_free_bytes: writes are refused (StoreFull) while the disk has less free: on a full disk the engine
            hangs in its write-ahead log rather than failing.
        quantization: "int8" keeps a scalar int8 copy of each vector in RAM (a quarter of the float32 size) that
            the HNSW search walks, and leaves the float32 vectors on disk (memory-mapped), read only to rescore the
            best candidates. optimize() builds the int8 copy, also of a collection created without it (which
            is searched as it was until then); "none" leaves a collection created with int8 as it is.
        oversampling: with int8, rescore this many times k candidates with the float32 vectors (>= 1).
        """
        check_collection_name(collection)
        if hnsw_ef is not None and hnsw_ef < 1:
            raise InvalidStoreInput("hnsw_ef must be >= 1")
        if quantization not in QUANTIZATIONS:
            raise InvalidStoreInput(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
        if not oversampling >= 1:
            raise InvalidStoreInput(f"oversampling must be >= 1, got {oversampling!r}")
        self._dir = Path(path) / collection
        self._shard_dir = self._dir / "shard"
        self._meta_path = self._dir / "meta.json"
        self._hnsw_ef = hnsw_ef
        self._full_scan_threshold_kb = full_scan_threshold_kb
        self._quantization = quantization
        self._oversampling = oversampling
        self._min_free_bytes = min_free_bytes
        self._lock = threading.RLock()
        self._shard: qe.EdgeShard | None = None
        self._meta: dict[str, Any] | None = None
        self._closed = False

        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_dir(self._dir)
        try:
            if self._meta_path.exists():
                meta = json.loads(self._meta_path.read_text())
                if not (isinstance(meta.get("dim"), int) and isinstance(meta.get("model"), str)):
                    raise ValueError(f"{self._meta_path} lacks dim or model")
                # int8 asked for: an existing float32 collection gets it at its next optimize() (its segments
                # are searched as they are until then). "none" leaves an int8 collection as it is.
                upgrade = qe.EdgeConfig(vectors=_vector_params(meta["dim"], True),
                                        quantization_config=_int8_quantization()) if quantization == "int8" else None
                self._shard = qe.EdgeShard.load(str(self._shard_dir), upgrade)
                self._meta = meta
        except Exception as exc:
            self._lock_file.close()
            raise StoreError(f"cannot open the store at {self._dir}: {exc}") from exc

    # ---- lifecycle -------------------------------------------------------------------------------

    def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, IndexKind] = NO_INDEXES) -> None:
        """Create the collection (cosine, with the payload indexes asked for), or check the existing one matches
        and add the indexes it lacks."""
        wanted = check_spec(dim, model, indexes)
        with self._lock:
            self._check_open()
            if self._meta is not None:
                if (self._meta["dim"], self._meta["model"]) != (dim, model):
                    raise CollectionMismatch.between(f"collection at {self._dir}",
                                                     (self._meta["dim"], self._meta["model"]), (dim, model))
                with self._engine() as shard:
                    if _add_indexes(shard, wanted):
                        shard.flush()
                return
            self._check_room()
            int8 = self._quantization == "int8"
            config = qe.EdgeConfig(
                vectors=_vector_params(dim, int8),
                hnsw_config=qe.HnswIndexConfig(
                    m=_HNSW_M, ef_construct=_HNSW_EF_CONSTRUCT, full_scan_threshold=self._full_scan_threshold_kb
                ),
                quantization_config=_int8_quantization() if int8 else None,
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=_INDEXING_THRESHOLD_KB),
            )
            shard = None
            try:
                if self._shard_dir.exists() and any(self._shard_dir.iterdir()):
                    # Left by an ensure_collection() that died before meta.json: it holds no points
                    # (upsert needs meta.json), so reuse it if its dim fits.
                    shard = qe.EdgeShard.load(str(self._shard_dir), config)
                else:
                    shard = qe.EdgeShard.create(str(self._shard_dir), config)
                _add_indexes(shard, wanted)
                shard.flush()
                meta = {"dim": dim, "model": model}
                _write_json_atomic(self._meta_path, meta)
            except Exception as exc:
                if shard is not None:
                    shard.close()
                raise StoreError(f"cannot create the collection at {self._dir}: {exc}") from exc
            self._shard, self._meta = shard, meta

    @property
    def collection_info(self) -> CollectionInfo | None:
        with self._lock:
            return None if self._meta is None else CollectionInfo(dim=self._meta["dim"], model=self._meta["model"])

    def unavailable(self) -> str | None:
        """The embedded engine serves whenever the store is open."""
        return f"the store at {self._dir} is closed" if self._closed else None

    def close(self) -> None:
        """Flush and release the directory; idempotent. Later calls raise StoreError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._shard is not None:
                    self._shard.flush()
                    self._shard.close()
            finally:
                self._shard = None
                self._lock_file.close()  # releases the flock

    # ---- writes ----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id, as one engine operation."""
        with self._engine(write=True) as shard:
            dim = self._meta["dim"]  # type: ignore[index]
            batch = [qe.Point(point_id(p.id), check_vector(p.vector, dim), clean_payload(p.payload)) for p in points]
            if batch:
                shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        with self._engine(write=True) as shard:
            wanted = point_ids(ids)
            if wanted:
                shard.update(qe.UpdateOperation.delete_points(wanted))

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Merge ``payload``'s keys into each point's payload; PointNotFound, and nothing changed, when any of the
        ids is not stored (the engine itself would change the points before the first unknown one)."""
        with self._engine(write=True) as shard:
            wanted, values = point_ids(ids), clean_payload(payload)
            if not wanted:
                return
            missing_ids(wanted, [_to_point(r, False) for r in shard.retrieve(wanted, False, False)])
            if values:
                shard.update(qe.UpdateOperation.set_payload(wanted, values))

    def optimize(self) -> None:
        """Build the HNSW index over what is stored (upserts after it are searched exactly until the
        next call). Blocks the whole process while it runs: the engine holds the GIL."""
        with self._engine(write=True) as shard:
            shard.optimize()
            shard.flush()

    # ---- reads -----------------------------------------------------------------------------------

    def retrieve(self, ids: Sequence[str], with_vector: bool = False) -> list[Point]:
        """The stored points among `ids` (any order; missing ones left out)."""
        wanted = point_ids(ids)
        with self._engine() as shard:
            if not wanted:
                return []
            records = shard.retrieve(wanted, True, with_vector)
        return [_to_point(r, with_vector) for r in records]

    def count(self, filter: FilterSpec = None) -> int:
        flt = _to_filter(parse_filter(filter))
        with self._engine() as shard:
            return shard.count(qe.CountRequest(exact=True, filter=flt))

    def query(
        self,
        vector: Sequence[float],
        k: int,
        filter: FilterSpec = None,
        exclude: Sequence[str] = (),
        exact: bool = False,
    ) -> list[Hit]:
        """The k points nearest to ``vector`` by cosine, best first. exact=True skips the HNSW graph."""
        check_at_least_one("k", k)
        parsed = excluding(parse_filter(filter), exclude)
        flt = _to_filter(parsed)
        with self._engine() as shard:
            request = qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(check_vector(vector, self._meta["dim"])),  # type: ignore[index]
                filter=flt,
                params=self.search_params(exact, acorn=needs_acorn(parsed)),
                with_payload=True,
                with_vector=False,
            )
            scored = shard.query(request)
        return [Hit(id=str(s.id), score=float(s.score), payload=dict(s.payload or {})) for s in scored]

    def search_params(self, exact: bool = False, acorn: bool = False) -> qe.SearchParams:
        """The engine's search parameters query() sends: the HNSW breadth, int8's rescoring (a collection without
        quantisation ignores that part), and ACORN for a filter that needs it (filters.needs_acorn)."""
        rescore = qe.QuantizationSearchParams(rescore=True, oversampling=self._oversampling)
        walk = qe.AcornSearchParams(enable=True) if acorn else None
        return qe.SearchParams(hnsw_ef=self._hnsw_ef, exact=exact, quantization=rescore, acorn=walk)

    def scroll(
        self,
        limit: int,
        offset: str | None = None,
        filter: FilterSpec = None,
        with_vector: bool = False,
        order_by: str | None = None,
    ) -> tuple[list[Point], str | None]:
        """One page of points in id order, starting at ``offset`` (an id, inclusive), or in ``order_by``'s
        (search/order.py); also returns the offset of the next page, or None after the last."""
        check_at_least_one("limit", limit)
        if order_by is not None:
            return ordered_page(self._ordered, limit, offset, parse_filter(filter), order_by, with_vector)
        start = None if offset is None else point_id(offset)
        flt = _to_filter(parse_filter(filter))
        with self._engine() as shard:
            request = qe.ScrollRequest(
                offset=start,
                limit=limit,
                filter=flt,
                with_payload=True,
                with_vector=with_vector,
            )
            records, next_offset = shard.scroll(request)
        points = [_to_point(r, with_vector) for r in records]
        return points, None if next_offset is None else str(next_offset)

    def _ordered(self, limit: int, field: str, newest_first: bool, start: str | None, filter: Filter | None,
                 with_vector: bool) -> list[tuple[Point, int]]:
        with self._engine() as shard:
            index = shard.info().payload_schema.get(field)
            if index is None or index.data_type != _INDEX_KINDS["datetime"]:
                raise InvalidStoreInput(f"order_by: {field!r} has no datetime index")
            direction = qe.Direction.Desc if newest_first else qe.Direction.Asc
            records, _ = shard.scroll(qe.ScrollRequest(
                limit=limit, filter=_to_filter(filter), with_payload=True, with_vector=with_vector,
                order_by=qe.OrderBy(field, direction, start)))
        return [(_to_point(r, with_vector), int(r.order_value)) for r in records]

    def stats(self) -> dict[str, int]:
        """points, indexed_vectors (in the HNSW graph; fewer than points means optimize() is due), segments."""
        with self._engine() as shard:
            info = shard.info()
            return {
                "points": info.points_count,
                "indexed_vectors": info.indexed_vectors_count,
                "segments": info.segments_count,
            }

    # ---- helpers ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store at {self._dir} is closed")

    def _check_room(self) -> None:
        free = shutil.disk_usage(self._dir).free
        if free < self._min_free_bytes:
            raise StoreFull(f"the vector store's disk is full: {free >> 20} MiB free, writes need "
                            f"{self._min_free_bytes >> 20} MiB")

    @contextmanager
    def _engine(self, write: bool = False) -> Iterator[qe.EdgeShard]:
        """Hold the lock around an engine call, and turn the engine's bare Exceptions into StoreError; a `write`
        first checks there is room for it."""
        with self._lock:
            self._check_open()
            if write:
                self._check_room()
            if self._shard is None:
                raise CollectionMissing(f"no collection at {self._dir} yet: call ensure_collection() first")
            try:
                yield self._shard
            except StoreError:
                raise
            except Exception as exc:
                raise store_error("qdrant-edge", exc) from exc


class EdgeEngine:
    """Collections as folders under ``path``, each opened by one EdgeStore at a time (in one process)."""

    def __init__(self, path: Path | str, *, hnsw_ef: int | None = None, full_scan_threshold_kb: int = 10_000,
                 min_free_bytes: int = MIN_FREE_BYTES, quantization: Quantization = "none",
                 oversampling: float = 2.0) -> None:
        """hnsw_ef, full_scan_threshold_kb, min_free_bytes, quantization, oversampling: for the stores it opens
        (see EdgeStore)."""
        self._path = Path(path)
        self._options: dict[str, Any] = {"hnsw_ef": hnsw_ef, "full_scan_threshold_kb": full_scan_threshold_kb,
                                         "min_free_bytes": min_free_bytes, "quantization": quantization,
                                         "oversampling": oversampling}

    def __repr__(self) -> str:
        return f"EdgeEngine({str(self._path)!r})"

    def open(self, collection: str) -> EdgeStore:
        return EdgeStore(self._path, collection, **self._options)

    def drop(self, collection: str) -> None:
        """Delete the collection's folder; StoreError while a store has it open."""
        directory = self._path / check_collection_name(collection)
        if not directory.exists():
            return
        lock = _lock_dir(directory)
        try:
            shutil.rmtree(directory)
        finally:
            lock.close()
        _fsync_dir(self._path)

    def swap(self, current: str, staging: str) -> str | None:
        """Exchange the two folders (see Engine.swap); StoreError while a store has either open."""
        cur, new = self._path / check_collection_name(current), self._path / check_collection_name(staging)
        if cur == new:
            raise InvalidStoreInput(f"cannot swap {current!r} with itself")
        if not (new / "meta.json").is_file():
            raise CollectionMissing(f"no collection at {new} to swap in: call ensure_collection() first")
        with ExitStack() as locks:
            locks.callback(_lock_dir(new).close)
            if not cur.exists():
                os.rename(new, cur)
                _fsync_dir(self._path)
                return None
            locks.callback(_lock_dir(cur).close)
            _exchange(cur, new)
            _fsync_dir(self._path)
        return staging

    def close(self) -> None:
        """Nothing to release: each store holds its own folder."""


def _exchange(a: Path, b: Path) -> None:
    """Afterwards ``a`` holds what ``b`` held and the other way round."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd = -100
        if renameat2(at_fdcwd, os.fsencode(b), at_fdcwd, os.fsencode(a), _RENAME_EXCHANGE) == 0:
            return
    # No atomic exchange here (old kernel/libc, or a file system without it): three renames, through a name no
    # collection can have (collection names have no dots).
    aside = a.with_name(f".{a.name}.swapping")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(a, aside)
    os.replace(b, a)
    os.replace(aside, b)


def _vector_params(dim: int, int8: bool) -> qe.EdgeVectorParams:
    """Cosine vectors of ``dim``; with int8 (whose copy the search walks in RAM) the float32 ones stay on disk,
    memory-mapped, and are read only to rescore."""
    return qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine, memory=qe.Memory.Cold if int8 else None)


def _int8_quantization() -> qe.ScalarQuantizationConfig:
    return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=_INT8_QUANTILE, memory=qe.Memory.Pinned)


def _to_point(record: Any, with_vector: bool) -> Point:
    vector = [float(x) for x in record.vector] if with_vector and record.vector is not None else None
    return Point(id=str(record.id), vector=vector, payload=dict(record.payload or {}))


def _to_filter(filter: Filter | None) -> qe.Filter | None:
    """The engine's spelling of a Filter (dogsearch/search/filters.py)."""
    if filter is None:
        return None
    return qe.Filter(must=[_condition(c) for c in filter.must], must_not=[_condition(c) for c in filter.must_not])


def _condition(condition: Condition) -> Any:
    if isinstance(condition, HasId):
        return qe.HasIdCondition(set(condition.ids))
    if isinstance(condition, IsEmpty):
        return qe.IsEmptyCondition(condition.field)
    if isinstance(condition, GeoRadius):
        centre = qe.GeoPoint(lon=condition.lon, lat=condition.lat)
        return qe.FieldCondition(condition.field, geo_radius=qe.GeoRadius(centre, condition.radius_km * 1000))
    if isinstance(condition, TimeRange):
        return qe.FieldCondition(condition.field, range=qe.RangeDateTime(gte=condition.gte, lte=condition.lte))
    field = condition.field
    # MatchAny takes strings only or ints only, and no bools: one condition per kind, ORed. The binding reads a
    # Python bool as the integer 1/0, which never matches a stored true/false; numpy's bool is the one type it
    # reads as a boolean.
    any_of = [qe.FieldCondition(field, match=qe.MatchValue(group[0]) if len(group) == 1 else qe.MatchAny(list(group)))
              for group in (condition.strings, condition.ints) if group]
    any_of += [qe.FieldCondition(field, match=qe.MatchValue(np.bool_(b))) for b in condition.bools]
    if not any_of:  # "any of nothing" matches nothing
        return qe.FieldCondition(field, match=qe.MatchAny([]))
    return any_of[0] if len(any_of) == 1 else qe.Filter(should=any_of)


def _add_indexes(shard: qe.EdgeShard, wanted: Mapping[str, IndexKind]) -> bool:
    """Builds each index of ``wanted`` the shard lacks or has of another kind; whether it built any."""
    have = {field: info.data_type for field, info in shard.info().payload_schema.items()}
    todo = [(field, _INDEX_KINDS[kind]) for field, kind in wanted.items() if have.get(field) != _INDEX_KINDS[kind]]
    for field, schema in todo:
        shard.update(qe.UpdateOperation.create_field_index(field, schema))
    return bool(todo)


def _lock_dir(directory: Path) -> IO[str]:
    # The engine's own WAL lock only exists once the shard does; this one also covers a fresh
    # directory, so two stores can't both create it, and it names the problem clearly.
    lock_file = open(directory / ".lock", "a")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StoreError(f"{directory} is already open: one store a directory, and another process (a running "
                         "`dogsearch serve` on this data directory?) or this one holds it; stop that server, or "
                         "send the command to it with --url where the command has one") from None
    return lock_file


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make a rename in it durable
    finally:
        os.close(dir_fd)
