"""The search service's collection on a Qdrant server (one node or a cluster), through qdrant-client: QdrantStore
and QdrantEngine implement dogsearch/search/contract.py's VectorStore and Engine.

Same behaviour as the embedded engine (ids, filters, scroll, errors), so the service, and the contract tests,
run unchanged on either engine. What differs is where the data lives and who builds the index:

- dim and model are kept with the collection itself: dim is the collection's vector size, the model name sits
  in the collection's metadata (Qdrant >= 1.16), both given in the one create_collection call, so no collection
  exists without them. A meta point would show up in count/scroll/query and need filtering everywhere.
- shard_number / replication_factor / write_consistency_factor are passed when the collection is created
  (a cluster fixes them then; replicas can be added later with Qdrant's own cluster API).
- Qdrant builds its HNSW index in the background, so optimize() only waits until the optimizer is idle.
- Many search processes may share one server (the service becomes stateless and can be scaled): a collection
  another process created is picked up, and a create race is resolved by re-reading.
- An unreachable server is StoreUnavailable (the service answers 503 and reports not ready), also at start:
  the store opens anyway and reads the collection once the server answers, so a search service started before
  Qdrant does not crash-loop.
- A name may be an alias of a collection (QdrantEngine.swap makes one when a reindex swaps a new collection in):
  the server resolves it on every request, so a store reads and writes through it as through a collection.
"""
from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from qdrant_client.local.qdrant_local import QdrantLocal

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
    CollectionInfo,
    CollectionMismatch,
    CollectionMissing,
    Hit,
    IndexKind,
    InvalidStoreInput,
    Point,
    PointNotFound,
    StoreError,
    StoreUnavailable,
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

# The key under the collection's metadata that says which embedding model made its vectors.
META_MODEL = "dogsearch_model"
_INDEX_KINDS: dict[IndexKind, qm.PayloadSchemaType] = {
    "keyword": qm.PayloadSchemaType.KEYWORD,
    "integer": qm.PayloadSchemaType.INTEGER,
    "float": qm.PayloadSchemaType.FLOAT,
    "bool": qm.PayloadSchemaType.BOOL,
    "geo": qm.PayloadSchemaType.GEO,
    "datetime": qm.PayloadSchemaType.DATETIME,
}
T = TypeVar("T")


class QdrantStore(StoreBase):
    """Thread-safe: the remote client (httpx) is; qdrant-client's local mode is not, so its calls are serialised."""

    builds_own_index = True  # the server indexes in the background

    def __init__(
        self,
        client: QdrantClient,
        collection: str = "dogs",
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        hnsw_ef: int | None = None,
        optimize_timeout_s: float = 600.0,
        close_client: bool = True,
    ) -> None:
        """Use ``client`` (a server URL's, or local mode's for tests); an existing collection is loaded as it is.

        The sharding arguments are sent only when this store creates the collection; None leaves the server's
        defaults (one shard per node, 1 replica, write consistency 1)."""
        check_collection_name(collection)
        self._create_args = _create_args(shard_number, replication_factor, write_consistency_factor, hnsw_ef)
        self._client = client
        self._collection = collection
        self._hnsw_ef = hnsw_ef
        self._optimize_timeout_s = optimize_timeout_s
        self._close_client = close_client
        self._serial = _serial_lock(client)
        self._create_lock = threading.Lock()
        self._meta: dict[str, Any] | None = None
        self._closed = False
        try:
            self._meta = self._read_meta()
        except StoreUnavailable:
            self._meta = None  # read when the server answers (_require / ensure_collection)
        except StoreError:
            if close_client:
                client.close()
            raise

    @classmethod
    def connect(cls, url: str, collection: str = "dogs", *, api_key: str | None = None, timeout_s: float = 30.0,
                **kwargs: Any) -> QdrantStore:
        """A store on the Qdrant server at ``url`` (REST, e.g. http://qdrant:6333)."""
        return cls(_connect(url, api_key, timeout_s), collection, **kwargs)

    def unavailable(self) -> str | None:
        """None when the server answers, else why not (for readiness checks)."""
        if self._closed:
            return f"the store of collection {self._collection!r} is closed"
        try:
            self._call(self._client.get_collections)
        except StoreError as exc:
            return str(exc)
        return None

    def __repr__(self) -> str:
        return f"QdrantStore(collection={self._collection!r}, create_args={self._create_args})"

    # ---- lifecycle -------------------------------------------------------------------------------

    def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, IndexKind] = NO_INDEXES) -> None:
        """Create the collection (cosine, the sharding settings, the payload indexes asked for), or check that the
        existing one matches and add the indexes it lacks."""
        wanted = check_spec(dim, model, indexes)
        self._check_open()
        with self._create_lock:
            meta = self._meta or self._read_meta()
            if meta is None:
                try:
                    self._call(
                        self._client.create_collection,
                        self._collection,
                        vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                        metadata={META_MODEL: model},
                        **self._create_args,
                    )
                except StoreError:
                    # Another search process may have created it first: then its collection is the one to check.
                    if self._read_meta() is None:
                        raise
                meta = self._read_meta()
                if meta is None:
                    raise StoreError(f"collection {self._collection!r} was not created")
            if (meta["dim"], meta["model"]) != (dim, model):
                self._meta = meta
                raise CollectionMismatch.between(f"collection {self._collection!r}", (meta["dim"], meta["model"]),
                                                 (dim, model))
            # Idempotent: also completes a collection whose creator died between the calls, and adds the indexes
            # an existing collection lacks (or has of another kind: the server rebuilds it).
            for field, kind in wanted.items():
                if meta["indexed"].get(field) != _INDEX_KINDS[kind]:
                    self._call(self._client.create_payload_index, self._collection, field, _INDEX_KINDS[kind],
                               wait=True)
                    meta["indexed"][field] = _INDEX_KINDS[kind]
            self._meta = meta

    @property
    def collection_info(self) -> CollectionInfo | None:
        """dim and model, or None before the collection exists. While unknown it asks the server, since another
        search process may have created it (so: StoreUnavailable when the server does not answer)."""
        meta = self._meta
        if meta is None and not self._closed:
            with self._create_lock:
                meta = self._meta = self._meta or self._read_meta()
        return None if meta is None else CollectionInfo(dim=meta["dim"], model=meta["model"])

    def close(self) -> None:
        """Release the client (when this store made it); idempotent. Later calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            self._client.close()

    # ---- writes ----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id, as one request (wait=True: visible to reads on return)."""
        dim = self._require()["dim"]
        batch = [qm.PointStruct(id=point_id(p.id), vector=check_vector(p.vector, dim),
                                payload=clean_payload(p.payload)) for p in points]
        if batch:
            self._call(self._client.upsert, self._collection, batch, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        self._require()
        wanted = point_ids(ids)
        if wanted:
            self._call(self._client.delete, self._collection, qm.PointIdsList(points=wanted), wait=True)

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Merge ``payload``'s keys into each point's payload; PointNotFound, and nothing changed, when any of the
        ids is not stored (the server itself would change the points before the first unknown one; a point
        deleted between the check and the write is a PointNotFound too, after the others changed)."""
        self._require()
        wanted, values = point_ids(ids), clean_payload(payload)
        if not wanted:
            return
        found = self._call(self._client.retrieve, self._collection, wanted, with_payload=False, with_vectors=False)
        missing_ids(wanted, [_to_point(r, False) for r in found])
        if values:
            self._call(self._client.set_payload, self._collection, payload=values, points=wanted, wait=True)

    def optimize(self) -> None:
        """The server indexes in the background by itself; this waits until its optimizer is idle (green)."""
        self._require()
        deadline = time.monotonic() + self._optimize_timeout_s
        while self._call(self._client.get_collection, self._collection).status != qm.CollectionStatus.GREEN:
            if time.monotonic() > deadline:
                raise StoreError(f"collection {self._collection!r} still optimizing after {self._optimize_timeout_s}s")
            time.sleep(0.5)

    # ---- reads -----------------------------------------------------------------------------------

    def retrieve(self, ids: Sequence[str], with_vector: bool = False) -> list[Point]:
        """The stored points among `ids` (any order; missing ones left out)."""
        self._require()
        wanted = point_ids(ids)
        if not wanted:
            return []
        records = self._call(self._client.retrieve, self._collection, wanted,
                             with_payload=True, with_vectors=with_vector)
        return [_to_point(r, with_vector) for r in records]

    def count(self, filter: FilterSpec = None) -> int:
        flt = _to_filter(parse_filter(filter))
        self._require()
        return self._call(self._client.count, self._collection, count_filter=flt, exact=True).count

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
        dim = self._require()["dim"]
        query = check_vector(vector, dim)
        # ACORN for a place or a time range (filters.needs_acorn). Sent only when they say something: local mode
        # (which searches exactly anyway) warns on any search params.
        acorn = qm.AcornSearchParams(enable=True) if needs_acorn(parsed) and self._serial is None else None
        params = (qm.SearchParams(hnsw_ef=self._hnsw_ef, exact=exact, acorn=acorn)
                  if exact or self._hnsw_ef or acorn else None)
        response = self._call(self._client.query_points, self._collection, query=query, limit=k,
                              query_filter=flt, search_params=params, with_payload=True,
                              with_vectors=False)
        # Qdrant scores in float32; REST prints them as short decimals and local mode computes in float64:
        # the float32 value, as EdgeStore gives it, makes scores comparable across engines and reloads.
        return [Hit(id=str(p.id), score=float(np.float32(p.score)), payload=dict(p.payload or {}))
                for p in response.points]

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
        self._require()
        records, next_offset = self._call(
            self._client.scroll, self._collection, scroll_filter=flt, limit=limit,
            offset=start, with_payload=True, with_vectors=with_vector,
        )
        return [_to_point(r, with_vector) for r in records], None if next_offset is None else str(next_offset)

    def _ordered(self, limit: int, field: str, newest_first: bool, start: str | None, filter: Filter | None,
                 with_vector: bool) -> list[tuple[Point, int]]:
        self._require()  # a server without the field's index refuses it (an InvalidStoreInput)
        order = qm.OrderBy(key=field, direction=qm.Direction.DESC if newest_first else qm.Direction.ASC,
                           start_from=start)
        records, _ = self._call(self._client.scroll, self._collection, scroll_filter=_to_filter(filter), limit=limit,
                                order_by=order, with_payload=True, with_vectors=with_vector)
        return [(_to_point(r, with_vector), int(r.order_value)) for r in records]

    def stats(self) -> dict[str, int]:
        """points, indexed_vectors (in the HNSW graphs), segments (over all shards of the collection)."""
        self._require()
        info = self._call(self._client.get_collection, self._collection)
        return {
            "points": info.points_count or 0,
            "indexed_vectors": info.indexed_vectors_count or 0,
            "segments": info.segments_count or 0,
        }

    # ---- helpers ---------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the store of collection {self._collection!r} is closed")

    def _require(self) -> dict[str, Any]:
        """The collection's meta; re-read once when unknown, since another search process may have made it."""
        self._check_open()
        meta = self._meta
        if meta is None:
            with self._create_lock:
                meta = self._meta = self._meta or self._read_meta()
        if meta is None:
            raise CollectionMissing(f"no collection {self._collection!r} yet: call ensure_collection() first")
        return meta

    def _read_meta(self) -> dict[str, Any] | None:
        """{"dim", "model", "indexed": {field: schema type}} of the collection on the server, or None when there
        is none."""
        self._check_open()
        try:
            info = self._call(self._client.get_collection, self._collection)
        except CollectionMissing:
            return None
        dim, model = _dim_and_model(self._collection, info)
        indexed = {field: index.data_type for field, index in (info.payload_schema or {}).items()}
        return {"dim": dim, "model": model, "indexed": indexed}

    def _forget(self) -> None:
        self._meta = None  # deleted behind our back: ensure_collection() makes it anew

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One client call, serialised in local mode, with the client's errors turned into StoreErrors."""
        with _errors(self._collection, self._forget), self._serial or nullcontext():
            return fn(*args, **kwargs)


class QdrantEngine:
    """Collections and aliases on one Qdrant server (or local mode, for tests)."""

    def __init__(
        self,
        client: QdrantClient,
        *,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        hnsw_ef: int | None = None,
        optimize_timeout_s: float = 600.0,
        close_client: bool = True,
    ) -> None:
        """The options are the stores' (see QdrantStore); the stores it opens share ``client``."""
        _create_args(shard_number, replication_factor, write_consistency_factor, hnsw_ef)
        self._client = client
        self._options: dict[str, Any] = {
            "shard_number": shard_number, "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor, "hnsw_ef": hnsw_ef,
            "optimize_timeout_s": optimize_timeout_s,
        }
        self._close_client = close_client
        self._serial = _serial_lock(client)
        self._closed = False

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None, timeout_s: float = 30.0, **kwargs: Any) -> QdrantEngine:
        """The Qdrant server at ``url`` (REST, e.g. http://qdrant:6333)."""
        return cls(_connect(url, api_key, timeout_s), **kwargs)

    def __repr__(self) -> str:
        return f"QdrantEngine({self._options})"

    def open(self, collection: str) -> QdrantStore:
        self._check_open()
        return QdrantStore(self._client, collection, **self._options, close_client=False)

    def drop(self, collection: str) -> None:
        """Delete the collection, or the alias and the collection it names; refuses a collection an alias names."""
        name = check_collection_name(collection)
        aliases = self._aliases()
        target = aliases.get(name, name)
        served_as = sorted(alias for alias, named in aliases.items() if named == target and alias != name)
        if served_as:
            raise StoreError(f"collection {target!r} is served as {', '.join(map(repr, served_as))} (an alias): "
                             "drop that name instead")
        if name in aliases:
            delete = qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=name))
            self._call(name, self._client.update_collection_aliases, change_aliases_operations=[delete])
        try:
            self._call(target, self._client.delete_collection, target)
        except CollectionMissing:
            pass  # nothing to drop

    def swap(self, current: str, staging: str) -> str | None:
        """Make ``current`` an alias of the collection ``staging`` (see Engine.swap)."""
        cur, new = check_collection_name(current), check_collection_name(staging)
        if cur == new:
            raise InvalidStoreInput(f"cannot swap {current!r} with itself")
        aliases = self._aliases()
        if new in aliases:
            raise StoreError(f"{staging!r} is an alias (of {aliases[new]!r}): swap in a collection")
        _dim_and_model(new, self._call(new, self._client.get_collection, new))  # a complete collection of ours
        create = qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=new, alias_name=cur))
        if cur in aliases:
            old = aliases[cur]
            if old == new:
                return None
            delete = qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=cur))
            # One request: the server applies both at once, so readers of `current` see the old or the new.
            self._call(cur, self._client.update_collection_aliases, change_aliases_operations=[delete, create])
            return old
        collections = {c.name for c in self._call(cur, self._client.get_collections).collections}
        if cur in collections:
            # The first swap of a plain collection: a name is a collection or an alias, never both, so the old
            # collection is deleted before the alias takes its name; in between, `current` does not exist (readers
            # get CollectionMissing), and its old contents are gone (the caller checked the new ones first).
            self._call(cur, self._client.delete_collection, cur)
        self._call(cur, self._client.update_collection_aliases, change_aliases_operations=[create])
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._close_client:
                self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the Qdrant engine is closed")

    def _aliases(self) -> dict[str, str]:
        """{alias: the collection it names} on the server."""
        self._check_open()
        found = self._call("", self._client.get_aliases).aliases
        return {a.alias_name: a.collection_name for a in found}

    def _call(self, collection: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with _errors(collection), self._serial or nullcontext():
            return fn(*args, **kwargs)


def _connect(url: str, api_key: str | None, timeout_s: float) -> QdrantClient:
    # check_compatibility asks the server for its version at construction; errors come at first use instead.
    return QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s), check_compatibility=False)


def _create_args(shard_number: int | None, replication_factor: int | None, write_consistency_factor: int | None,
                 hnsw_ef: int | None) -> dict[str, int]:
    """Checks the options; returns those create_collection is sent."""
    for name, value in (("shard_number", shard_number), ("replication_factor", replication_factor),
                        ("write_consistency_factor", write_consistency_factor), ("hnsw_ef", hnsw_ef)):
        if value is not None and value < 1:
            raise InvalidStoreInput(f"{name} must be >= 1")
    return {
        k: v
        for k, v in (("shard_number", shard_number), ("replication_factor", replication_factor),
                     ("write_consistency_factor", write_consistency_factor))
        if v is not None
    }


_LOCAL_LOCKS: weakref.WeakKeyDictionary[Any, threading.RLock] = weakref.WeakKeyDictionary()
_LOCAL_LOCKS_GUARD = threading.Lock()


def _serial_lock(client: QdrantClient) -> threading.RLock | None:
    """One lock per local-mode client, shared by the stores and the engine on it (local mode keeps plain Python
    structures without locks); None for a server's client."""
    if not isinstance(getattr(client, "_client", None), QdrantLocal):
        return None
    with _LOCAL_LOCKS_GUARD:
        return _LOCAL_LOCKS.setdefault(client, threading.RLock())


def _dim_and_model(collection: str, info: qm.CollectionInfo) -> tuple[int, str]:
    """The vector size and model of a collection this service made; StoreError for one made by something else."""
    vectors = info.config.params.vectors
    model = (info.config.metadata or {}).get(META_MODEL)
    if not isinstance(vectors, qm.VectorParams) or vectors.distance != qm.Distance.COSINE:
        raise StoreError(f"collection {collection!r} is not a single cosine vector: {vectors}")
    if not isinstance(model, str):
        raise StoreError(
            f"collection {collection!r} has no {META_MODEL!r} in its metadata: made by something "
            "else, or the server is older than Qdrant 1.16 (collection metadata)"
        )
    return vectors.size, model


@contextmanager
def _errors(collection: str, on_missing: Callable[[], None] | None = None) -> Iterator[None]:
    """qdrant-client's errors as StoreErrors; ``on_missing`` runs when the server says the collection is gone."""
    try:
        yield
    except StoreError:
        raise
    except ResponseHandlingException as exc:  # no HTTP answer: refused, reset, timed out
        raise StoreUnavailable(f"qdrant unreachable: {exc}") from exc
    except UnexpectedResponse as exc:
        if exc.status_code in (502, 503, 504):
            raise StoreUnavailable(f"qdrant unavailable: {exc}") from exc
        if exc.status_code == 404:
            if "No point" in str(exc):  # set_payload on a point deleted meanwhile
                raise PointNotFound(f"qdrant: {exc}") from exc
            if on_missing is not None:
                on_missing()
            raise CollectionMissing(f"no collection {collection!r} on the server") from exc
        if exc.status_code in (400, 422):
            raise InvalidStoreInput(f"qdrant: {exc}") from exc
        raise store_error("qdrant", exc) from exc
    except ValueError as exc:
        # Local mode says "Collection X not found" with a ValueError, as the server says 404.
        if "not found" in str(exc):
            if on_missing is not None:
                on_missing()
            raise CollectionMissing(f"no collection {collection!r}") from exc
        raise StoreError(f"qdrant: {exc}") from exc
    except Exception as exc:  # connection refused, timeouts, ...
        raise store_error("qdrant", exc) from exc


def _to_point(record: Any, with_vector: bool) -> Point:
    vector = [float(x) for x in record.vector] if with_vector and record.vector is not None else None
    return Point(id=str(record.id), vector=vector, payload=dict(record.payload or {}))


def _to_filter(filter: Filter | None) -> qm.Filter | None:
    """qdrant-client's spelling of a Filter (dogsearch/search/filters.py)."""
    if filter is None:
        return None
    return qm.Filter(must=[_condition(c) for c in filter.must] or None,
                     must_not=[_condition(c) for c in filter.must_not] or None)


def _condition(condition: Condition) -> Any:
    if isinstance(condition, HasId):
        return qm.HasIdCondition(has_id=list(condition.ids))
    if isinstance(condition, IsEmpty):
        return qm.IsEmptyCondition(is_empty=qm.PayloadField(key=condition.field))
    if isinstance(condition, GeoRadius):
        centre = qm.GeoPoint(lon=condition.lon, lat=condition.lat)
        return qm.FieldCondition(key=condition.field,
                                 geo_radius=qm.GeoRadius(center=centre, radius=condition.radius_km * 1000))
    if isinstance(condition, TimeRange):
        return qm.FieldCondition(key=condition.field, range=qm.DatetimeRange(gte=condition.gte, lte=condition.lte))
    field = condition.field
    # MatchAny takes strings only or ints only (and a bool is no int there): one condition per kind, ORed.
    any_of: list[qm.FieldCondition] = [
        qm.FieldCondition(key=field, match=qm.MatchValue(value=group[0]) if len(group) == 1 else
                          qm.MatchAny(any=list(group)))
        for group in (condition.strings, condition.ints) if group
    ]
    any_of += [qm.FieldCondition(key=field, match=qm.MatchValue(value=b)) for b in condition.bools]
    if not any_of:  # "any of nothing" matches nothing
        return qm.FieldCondition(key=field, match=qm.MatchAny(any=[]))
    return any_of[0] if len(any_of) == 1 else qm.Filter(should=any_of)
