"""Embedded vector store for the search service: one collection of dog embeddings in a qdrant-edge shard.

Layout on disk, under ``<path>/<collection>/``:
  shard/      the engine's data (segments + write-ahead log)
  meta.json   {"dim", "model"}, written last by ensure_collection(), so a reopen knows what was created
  .lock       flock'ed while open: one EdgeStore per directory, across threads and processes

Filters are engine-neutral mappings: ``{"breed": "pug"}`` means payload["breed"] == "pug" (str, int or bool),
``{"breed": ["pug", "beagle"]}`` means any of the values, several fields are ANDed. As in Qdrant, a bool only
matches a bool (never 1/0), an int only an int, and a list-valued payload field matches when any element does.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import qdrant_edge as qe

from dogsearch.core.errors import Conflict, DogsearchError, InvalidInput, NotFound

# Payload fields the service filters on most; other fields still filter, just by scanning.
INDEXED_FIELDS = ("breed", "name")
# Engine defaults, spelled out because HnswIndexConfig requires them.
_HNSW_M = 16
_HNSW_EF_CONSTRUCT = 100
# Let optimize() build an HNSW graph whatever the collection size (the engine's default skips
# segments under ~10 MB); full_scan_threshold_kb still decides when the graph is worth using.
_INDEXING_THRESHOLD_KB = 1
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Point:
    id: str  # a UUID string
    vector: list[float] | None  # None when not requested; stored unit-normalised (cosine)
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity, higher is better
    payload: dict[str, Any]


class StoreError(DogsearchError):
    """Any failure of the store or the engine underneath."""


class CollectionMismatch(StoreError, Conflict):
    """The existing collection was made with another dim or model."""


class CollectionMissing(StoreError, Conflict):
    """An operation needing the collection came before ensure_collection()."""


class InvalidStoreInput(StoreError, InvalidInput):
    """A bad vector, id, filter or payload from the caller."""


class PointNotFound(StoreError, NotFound):
    """No point with that id."""


class DerivedReads:
    """`get()` and `similar()` for any store with retrieve() and query(): both engines answer them the same way."""

    def get(self, id: str, with_vector: bool = False) -> Point | None:
        found = self.retrieve([id], with_vector)  # type: ignore[attr-defined]
        return found[0] if found else None

    def similar(self, id: str, k: int, filter: Mapping[str, Any] | None = None) -> list[Hit]:
        """More like this: the k points nearest to the stored point ``id``, which is left out; PointNotFound if
        there is none."""
        point = self.get(id, with_vector=True)
        if point is None:
            raise PointNotFound(f"no point {id}")
        return self.query(point.vector, k, filter=filter, exclude=[point.id])  # type: ignore[arg-type]


class EdgeStore(DerivedReads):
    """Thread-safe: every engine call runs under one lock. That costs no parallelism, because
    qdrant-edge holds the GIL for the whole of each call anyway (optimize() included)."""

    def __init__(
        self,
        path: Path | str,
        collection: str = "dogs",
        *,
        hnsw_ef: int | None = None,
        full_scan_threshold_kb: int = 10_000,
    ) -> None:
        """Open (creating directories) the store at ``path``; an existing collection is loaded as it was.

        hnsw_ef: HNSW search breadth; None is the engine's default (ef_construct, 100).
        full_scan_threshold_kb: segments, and filtered candidate sets, holding fewer vectors than this many KB
            are searched exactly even after optimize() (10,000 KB, the engine's default, is about 6,500 vectors
            of 384 floats). Lower it only to measure the graph on small data: in the graph, a filter on an
            unindexed field that matches few points finds few of them. Fixed when the collection is created
            (the engine keeps it); ignored on reopen.
        """
        if not _COLLECTION_NAME.fullmatch(collection):
            raise InvalidStoreInput(f"collection name must match {_COLLECTION_NAME.pattern}: {collection!r}")
        if hnsw_ef is not None and hnsw_ef < 1:
            raise InvalidStoreInput("hnsw_ef must be >= 1")
        self._dir = Path(path) / collection
        self._shard_dir = self._dir / "shard"
        self._meta_path = self._dir / "meta.json"
        self._hnsw_ef = hnsw_ef
        self._full_scan_threshold_kb = full_scan_threshold_kb
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
                self._shard = qe.EdgeShard.load(str(self._shard_dir))
                self._meta = meta
        except Exception as exc:
            self._lock_file.close()
            raise StoreError(f"cannot open the store at {self._dir}: {exc}") from exc

    # ---- lifecycle -------------------------------------------------------------------------------

    def ensure_collection(self, dim: int, model: str) -> None:
        """Create the collection (cosine, keyword indexes on breed and name), or check the existing one matches."""
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidStoreInput(f"dim must be a positive int, got {dim!r}")
        if not isinstance(model, str) or not model:
            raise InvalidStoreInput("model must be a non-empty string")
        with self._lock:
            self._check_open()
            if self._meta is not None:
                if (self._meta["dim"], self._meta["model"]) != (dim, model):
                    raise CollectionMismatch(
                        f"collection at {self._dir} holds dim={self._meta['dim']} model={self._meta['model']!r}, "
                        f"asked for dim={dim} model={model!r}"
                    )
                return
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
                hnsw_config=qe.HnswIndexConfig(
                    m=_HNSW_M, ef_construct=_HNSW_EF_CONSTRUCT, full_scan_threshold=self._full_scan_threshold_kb
                ),
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
                for field in INDEXED_FIELDS:
                    shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
                shard.flush()
                meta = {"dim": dim, "model": model}
                _write_json_atomic(self._meta_path, meta)
            except Exception as exc:
                if shard is not None:
                    shard.close()
                raise StoreError(f"cannot create the collection at {self._dir}: {exc}") from exc
            self._shard, self._meta = shard, meta

    @property
    def collection_info(self) -> dict[str, Any] | None:
        with self._lock:
            return None if self._meta is None else {"dim": self._meta["dim"], "model": self._meta["model"]}

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

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- writes ----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id, as one engine operation."""
        with self._engine() as shard:
            dim = self._meta["dim"]  # type: ignore[index]
            batch = [qe.Point(_point_id(p.id), self._vector(p.vector, dim), _payload(p.payload)) for p in points]
            if batch:
                shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        with self._engine() as shard:
            point_ids = [_point_id(i) for i in ids]
            if point_ids:
                shard.update(qe.UpdateOperation.delete_points(point_ids))

    def optimize(self) -> None:
        """Build the HNSW index over what is stored (upserts after it are searched exactly until the
        next call). Blocks the whole process while it runs: the engine holds the GIL."""
        with self._engine() as shard:
            shard.optimize()
            shard.flush()

    # ---- reads -----------------------------------------------------------------------------------

    def retrieve(self, ids: Sequence[str], with_vector: bool = False) -> list[Point]:
        """The stored points among `ids` (any order; missing ones left out)."""
        point_ids = [_point_id(i) for i in ids]
        if not point_ids:
            return []
        with self._engine() as shard:
            records = shard.retrieve(point_ids, True, with_vector)
        return [_to_point(r, with_vector) for r in records]

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        with self._engine() as shard:
            return shard.count(qe.CountRequest(exact=True, filter=_to_filter(filter)))

    def query(
        self,
        vector: Sequence[float],
        k: int,
        filter: Mapping[str, Any] | None = None,
        exclude: Sequence[str] = (),
        exact: bool = False,
    ) -> list[Hit]:
        """The k points nearest to ``vector`` by cosine, best first. exact=True skips the HNSW graph."""
        if k < 1:
            raise InvalidStoreInput(f"k must be >= 1, got {k}")
        with self._engine() as shard:
            request = qe.QueryRequest(
                limit=k,
                query=qe.Query.Nearest(self._vector(vector, self._meta["dim"])),  # type: ignore[index]
                filter=_to_filter(filter, exclude),
                params=qe.SearchParams(hnsw_ef=self._hnsw_ef, exact=exact),
                with_payload=True,
                with_vector=False,
            )
            scored = shard.query(request)
        return [Hit(id=str(s.id), score=float(s.score), payload=dict(s.payload or {})) for s in scored]

    def scroll(
        self,
        limit: int,
        offset: str | None = None,
        filter: Mapping[str, Any] | None = None,
        with_vector: bool = False,
    ) -> tuple[list[Point], str | None]:
        """One page of points in id order, starting at ``offset`` (an id, inclusive); also returns the
        offset of the next page, or None after the last."""
        if limit < 1:
            raise InvalidStoreInput(f"limit must be >= 1, got {limit}")
        with self._engine() as shard:
            request = qe.ScrollRequest(
                offset=None if offset is None else _point_id(offset),
                limit=limit,
                filter=_to_filter(filter),
                with_payload=True,
                with_vector=with_vector,
            )
            records, next_offset = shard.scroll(request)
        points = [_to_point(r, with_vector) for r in records]
        return points, None if next_offset is None else str(next_offset)

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

    @contextmanager
    def _engine(self) -> Iterator[qe.EdgeShard]:
        """Hold the lock around an engine call, and turn the engine's bare Exceptions into StoreError."""
        with self._lock:
            self._check_open()
            if self._shard is None:
                raise CollectionMissing(f"no collection at {self._dir} yet: call ensure_collection() first")
            try:
                yield self._shard
            except StoreError:
                raise
            except Exception as exc:
                raise StoreError(f"qdrant-edge: {exc}") from exc

    @staticmethod
    def _vector(vector: Sequence[float] | None, dim: int) -> list[float]:
        try:
            array = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidStoreInput(f"vector is not a list of numbers: {exc}") from None
        if array.shape != (dim,):
            raise InvalidStoreInput(f"vector must have {dim} numbers, got shape {array.shape}")
        # The engine accepts NaN and zero vectors, and then scores them as 0 against everything.
        if not np.isfinite(array).all() or not array.any():
            raise InvalidStoreInput("vector must be finite and not all zeros")
        return array.tolist()


def _point_id(id: str) -> str:
    # The engine takes UUIDs or unsigned ints and rejects other strings; this API speaks UUID strings only.
    try:
        return str(uuid.UUID(str(id)))
    except ValueError:
        raise InvalidStoreInput(f"point id must be a UUID string, got {id!r}") from None


def _payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip keeps the stored payload what a Qdrant server would store (the engine
    # itself would turn bytes into lists of ints, say) and fails early on what JSON can't hold.
    try:
        return json.loads(json.dumps(dict(payload), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidStoreInput(f"payload is not JSON: {exc}") from None


def _to_point(record: Any, with_vector: bool) -> Point:
    vector = [float(x) for x in record.vector] if with_vector and record.vector is not None else None
    return Point(id=str(record.id), vector=vector, payload=dict(record.payload or {}))


def _to_filter(filter: Mapping[str, Any] | None, exclude: Sequence[str] = ()) -> qe.Filter | None:
    must = [_condition(field, value) for field, value in (filter or {}).items()]
    must_not = [qe.HasIdCondition({_point_id(i) for i in exclude})] if exclude else []
    return qe.Filter(must=must, must_not=must_not) if must or must_not else None


def _condition(field: str, value: Any) -> qe.FieldCondition | qe.Filter:
    if not isinstance(field, str) or not field:
        raise InvalidStoreInput(f"filter field must be a non-empty string, got {field!r}")
    if not isinstance(value, (list, tuple, set, frozenset)):
        return qe.FieldCondition(field, match=qe.MatchValue(_match_value(field, value)))
    values = [_match_value(field, v) for v in value]
    # MatchAny takes strings only or ints only, and no bools: one condition per kind, ORed.
    strings = [v for v in values if isinstance(v, str)]
    ints = [v for v in values if isinstance(v, int)]
    bools = {v for v in values if isinstance(v, np.bool_)}
    any_of = [qe.FieldCondition(field, match=qe.MatchAny(group)) for group in (strings, ints) if group]
    any_of += [qe.FieldCondition(field, match=qe.MatchValue(b)) for b in bools]
    if not any_of:  # "any of nothing" matches nothing
        return qe.FieldCondition(field, match=qe.MatchAny([]))
    return any_of[0] if len(any_of) == 1 else qe.Filter(should=any_of)


def _match_value(field: str, value: Any) -> str | int | np.bool_:
    if isinstance(value, bool):
        # The binding reads a Python bool as the integer 1/0, which never matches a stored true/false;
        # numpy's bool is the one type it reads as a boolean.
        return np.bool_(value)
    if isinstance(value, str) or (isinstance(value, int) and -(2**63) <= value < 2**63):
        return value
    raise InvalidStoreInput(
        f"filter on {field!r}: values must be str, int (64-bit) or bool, or a list of them; got {value!r}"
    )


def _lock_dir(directory: Path) -> IO[str]:
    # The engine's own WAL lock only exists once the shard does; this one also covers a fresh
    # directory, so two stores can't both create it, and it names the problem clearly.
    lock_file = open(directory / ".lock", "a")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise StoreError(f"{directory} is already open (one EdgeStore per directory, in one process)") from None
    return lock_file


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
