"""The search service's collection on a Qdrant server (one node or a cluster), through qdrant-client.

Same interface and behaviour as EdgeStore (ids, filters, scroll, errors), so the service, and the store tests,
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
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from qdrant_client.local.qdrant_local import QdrantLocal

from dogsearch.core.errors import Unavailable
from dogsearch.search.edge import (
    INDEXED_FIELDS,
    CollectionMismatch,
    CollectionMissing,
    DerivedReads,
    EdgeStore,
    Hit,
    InvalidStoreInput,
    Point,
    StoreError,
    _match_value,
    _payload,
    _point_id,
)

_COLLECTION_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
# The key under the collection's metadata that says which embedding model made its vectors.
META_MODEL = "dogsearch_model"
T = TypeVar("T")


class StoreUnavailable(StoreError, Unavailable):
    """The server did not answer (refused, timed out, 502-504): retry later; an HTTP 503, not a 500."""


class ServerStore(DerivedReads):
    """Thread-safe: the remote client (httpx) is; qdrant-client's local mode is not, so its calls are serialised."""

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
        if not collection or not set(collection) <= _COLLECTION_NAME_CHARS:
            raise InvalidStoreInput(f"collection name must match [A-Za-z0-9_-]+: {collection!r}")
        for name, value in (("shard_number", shard_number), ("replication_factor", replication_factor),
                            ("write_consistency_factor", write_consistency_factor), ("hnsw_ef", hnsw_ef)):
            if value is not None and value < 1:
                raise InvalidStoreInput(f"{name} must be >= 1")
        self._client = client
        self._collection = collection
        self._create_args = {
            k: v
            for k, v in (("shard_number", shard_number), ("replication_factor", replication_factor),
                         ("write_consistency_factor", write_consistency_factor))
            if v is not None
        }
        self._hnsw_ef = hnsw_ef
        self._optimize_timeout_s = optimize_timeout_s
        self._close_client = close_client
        # Local mode keeps plain Python structures without locks.
        self._serial = threading.RLock() if isinstance(getattr(client, "_client", None), QdrantLocal) else None
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
                **kwargs: Any) -> ServerStore:
        """A store on the Qdrant server at ``url`` (REST, e.g. http://qdrant:6333)."""
        # check_compatibility asks the server for its version at construction; errors come at first use instead.
        client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout_s), check_compatibility=False)
        return cls(client, collection, **kwargs)

    def unavailable(self) -> str | None:
        """None when the server answers, else why not (for readiness checks)."""
        try:
            self._call(self._client.get_collections)
        except StoreError as exc:
            return str(exc)
        return None

    def __repr__(self) -> str:
        return f"ServerStore(collection={self._collection!r}, create_args={self._create_args})"

    # ---- lifecycle -------------------------------------------------------------------------------

    def ensure_collection(self, dim: int, model: str) -> None:
        """Create the collection (cosine, keyword indexes on breed and name, the sharding settings), or check
        that the existing one matches."""
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise InvalidStoreInput(f"dim must be a positive int, got {dim!r}")
        if not isinstance(model, str) or not model:
            raise InvalidStoreInput("model must be a non-empty string")
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
                raise CollectionMismatch(
                    f"collection {self._collection!r} holds dim={meta['dim']} model={meta['model']!r}, "
                    f"asked for dim={dim} model={model!r}"
                )
            # Idempotent: also completes a collection whose creator died between the calls.
            for field in INDEXED_FIELDS:
                if field not in meta["indexed"]:
                    self._call(self._client.create_payload_index, self._collection, field,
                               qm.PayloadSchemaType.KEYWORD, wait=True)
            self._meta = meta

    @property
    def collection_info(self) -> dict[str, Any] | None:
        """{"dim", "model"}, or None before the collection exists. While unknown it asks the server, since
        another search process may have created it (so: StoreUnavailable when the server does not answer)."""
        meta = self._meta
        if meta is None and not self._closed:
            with self._create_lock:
                meta = self._meta = self._meta or self._read_meta()
        return None if meta is None else {"dim": meta["dim"], "model": meta["model"]}

    def close(self) -> None:
        """Release the client (when this store made it); idempotent. Later calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            self._client.close()

    def __enter__(self) -> ServerStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- writes ----------------------------------------------------------------------------------

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id, as one request (wait=True: visible to reads on return)."""
        dim = self._require()["dim"]
        batch = [qm.PointStruct(id=_point_id(p.id), vector=EdgeStore._vector(p.vector, dim),
                                payload=_payload(p.payload)) for p in points]
        if batch:
            self._call(self._client.upsert, self._collection, batch, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        self._require()
        point_ids = [_point_id(i) for i in ids]
        if point_ids:
            self._call(self._client.delete, self._collection, qm.PointIdsList(points=point_ids), wait=True)

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
        point_ids = [_point_id(i) for i in ids]
        if not point_ids:
            return []
        records = self._call(self._client.retrieve, self._collection, point_ids,
                             with_payload=True, with_vectors=with_vector)
        return [_to_point(r, with_vector) for r in records]

    def count(self, filter: Mapping[str, Any] | None = None) -> int:
        self._require()
        return self._call(self._client.count, self._collection, count_filter=_to_filter(filter), exact=True).count

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
        dim = self._require()["dim"]
        query = EdgeStore._vector(vector, dim)
        query_filter = _to_filter(filter, exclude)
        # Sent only when they say something: local mode warns on any search params.
        params = qm.SearchParams(hnsw_ef=self._hnsw_ef, exact=exact) if exact or self._hnsw_ef else None
        response = self._call(self._client.query_points, self._collection, query=query, limit=k,
                              query_filter=query_filter, search_params=params, with_payload=True,
                              with_vectors=False)
        # Qdrant scores in float32; REST prints them as short decimals and local mode computes in float64:
        # the float32 value, as EdgeStore gives it, makes scores comparable across engines and reloads.
        return [Hit(id=str(p.id), score=float(np.float32(p.score)), payload=dict(p.payload or {}))
                for p in response.points]

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
        self._require()
        records, next_offset = self._call(
            self._client.scroll, self._collection, scroll_filter=_to_filter(filter), limit=limit,
            offset=None if offset is None else _point_id(offset), with_payload=True, with_vectors=with_vector,
        )
        return [_to_point(r, with_vector) for r in records], None if next_offset is None else str(next_offset)

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
        """{"dim", "model", "indexed"} of the collection on the server, or None when there is none."""
        self._check_open()
        try:
            info = self._call(self._client.get_collection, self._collection)
        except CollectionMissing:
            return None
        vectors = info.config.params.vectors
        model = (info.config.metadata or {}).get(META_MODEL)
        if not isinstance(vectors, qm.VectorParams) or vectors.distance != qm.Distance.COSINE:
            raise StoreError(f"collection {self._collection!r} is not a single cosine vector: {vectors}")
        if not isinstance(model, str):
            raise StoreError(
                f"collection {self._collection!r} has no {META_MODEL!r} in its metadata: made by something "
                "else, or the server is older than Qdrant 1.16 (collection metadata)"
            )
        return {"dim": vectors.size, "model": model, "indexed": set(info.payload_schema or {})}

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One client call, serialised in local mode, with the client's errors turned into StoreErrors."""
        with self._errors(), self._serial or nullcontext():
            return fn(*args, **kwargs)

    @contextmanager
    def _errors(self) -> Iterator[None]:
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
                self._meta = None  # deleted behind our back: ensure_collection() makes it anew
                raise CollectionMissing(f"no collection {self._collection!r} on the server") from exc
            if exc.status_code in (400, 422):
                raise InvalidStoreInput(f"qdrant: {exc}") from exc
            raise StoreError(f"qdrant: {exc}") from exc
        except ValueError as exc:
            # Local mode says "Collection X not found" with a ValueError, as the server says 404.
            if "not found" in str(exc):
                self._meta = None
                raise CollectionMissing(f"no collection {self._collection!r}") from exc
            raise StoreError(f"qdrant: {exc}") from exc
        except Exception as exc:  # connection refused, timeouts, ...
            raise StoreError(f"qdrant: {exc}") from exc


def _to_point(record: Any, with_vector: bool) -> Point:
    vector = [float(x) for x in record.vector] if with_vector and record.vector is not None else None
    return Point(id=str(record.id), vector=vector, payload=dict(record.payload or {}))


def _to_filter(filter: Mapping[str, Any] | None, exclude: Sequence[str] = ()) -> qm.Filter | None:
    must = [_condition(field, value) for field, value in (filter or {}).items()]
    must_not = [qm.HasIdCondition(has_id=[_point_id(i) for i in exclude])] if exclude else []
    return qm.Filter(must=must or None, must_not=must_not or None) if must or must_not else None


def _condition(field: str, value: Any) -> qm.FieldCondition | qm.Filter:
    # The same meaning as EdgeStore's filters, spelled in qdrant-client's models.
    if not isinstance(field, str) or not field:
        raise InvalidStoreInput(f"filter field must be a non-empty string, got {field!r}")
    if not isinstance(value, (list, tuple, set, frozenset)):
        return qm.FieldCondition(key=field, match=qm.MatchValue(value=_plain(_match_value(field, value))))
    values = [_plain(_match_value(field, v)) for v in value]
    # MatchAny takes strings only or ints only (and a bool is no int there): one condition per kind, ORed.
    strings = [v for v in values if isinstance(v, str)]
    ints = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    bools = sorted({v for v in values if isinstance(v, bool)})
    any_of: list[qm.FieldCondition] = [
        qm.FieldCondition(key=field, match=qm.MatchAny(any=group)) for group in (strings, ints) if group
    ]
    any_of += [qm.FieldCondition(key=field, match=qm.MatchValue(value=b)) for b in bools]
    if not any_of:  # "any of nothing" matches nothing
        return qm.FieldCondition(key=field, match=qm.MatchAny(any=[]))
    return any_of[0] if len(any_of) == 1 else qm.Filter(should=any_of)


def _plain(value: Any) -> str | int | bool:
    # EdgeStore's checker hands bools over as numpy bools (its engine's binding needs them); JSON wants bool.
    return value if isinstance(value, (str, int)) else bool(value)
