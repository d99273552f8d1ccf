"""What a vector store is, whichever engine holds it: the types, the errors and the two Protocols the rest of
dogsearch uses. The engines (dogsearch/search/edge.py: the embedded qdrant-edge; dogsearch/search/qdrant.py: a
Qdrant server through qdrant-client) implement them with the same behaviour, which tests/search/test_contract.py
checks on both.

The terms, for every method below:
- A store holds one collection of points. A point id is a UUID string (any spelling in, the canonical lower-case
  form back); anything else is InvalidStoreInput.
- Vectors are compared by cosine: the engine stores them unit-normalised (a vector read back has length 1), a
  score is the cosine similarity in float32 (higher is better). A vector of the wrong length, with NaN or infinity,
  or of all zeros is InvalidStoreInput.
- A payload is a JSON object (what JSON cannot hold is InvalidStoreInput) and comes back as plain JSON types.
- Filters are dogsearch.search.filters.Filter, or the mapping parse_filter() reads: ``{"breed": "pug"}``,
  ``{"breed": ["pug", "beagle"], "$not": {"color": "black"}, "$empty": ["name"]}`` (see that module).
- Before ensure_collection() made the collection, every method but collection_info, unavailable and close raises
  CollectionMissing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args

from dogsearch.core.errors import Conflict, DogsearchError, InvalidInput, NotFound, StorageFull, Unavailable

if TYPE_CHECKING:
    from dogsearch.search.filters import FilterSpec


@dataclass(frozen=True)
class Point:
    id: str  # a UUID string
    vector: list[float] | None  # None when not requested; stored unit-normalised (cosine)
    payload: dict[str, Any]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float  # cosine similarity (float32), higher is better
    payload: dict[str, Any]


@dataclass(frozen=True)
class CollectionInfo:
    dim: int  # the vectors' length
    model: str  # the embedding model that made them: vectors of two models never share a collection


# Payload index kinds (Qdrant's payload schema types). An index makes filters on its field fast; a filter on a field
# without one still works, by scanning.
IndexKind = Literal["keyword", "integer", "float", "bool", "geo", "datetime"]
INDEX_KINDS: tuple[IndexKind, ...] = get_args(IndexKind)
NO_INDEXES: Mapping[str, IndexKind] = MappingProxyType({})
# How the embedded engine keeps vectors: "none" float32 only; "int8" also an int8 copy in RAM (EdgeStore).
Quantization = Literal["none", "int8"]
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)


# ---- errors ------------------------------------------------------------------------------------------------------


class StoreError(DogsearchError):
    """Any failure of the store or the engine underneath."""


class CollectionMismatch(StoreError, Conflict):
    """The existing collection was made with another dim or model."""

    @classmethod
    def between(cls, where: str, held: tuple[int, str], asked: tuple[int, str]) -> CollectionMismatch:
        """The error every engine raises, naming the way out (a model change moves a gallery by reindexing)."""
        return cls(f"{where} holds dim={held[0]} model={held[1]!r}, asked for dim={asked[0]} model={asked[1]!r}; "
                   "`dogsearch reindex` moves a gallery to another model")


class CollectionMissing(StoreError, Conflict):
    """An operation needing the collection came before ensure_collection()."""


class InvalidStoreInput(StoreError, InvalidInput):
    """A bad vector, id, filter or payload from the caller."""


class PointNotFound(StoreError, NotFound):
    """No point with that id."""


class StoreFull(StorageFull, StoreError):
    """The engine's disk is full: nothing of the write was applied that a retry would not make whole."""


# How a full disk shows in an engine's message (Rust's io::Error, a Qdrant server's 500): ENOSPC, EDQUOT.
_DISK_FULL = ("no space left on device", "os error 28", "disk quota exceeded", "os error 122")


def store_error(engine: str, exc: BaseException) -> StoreError:
    """An engine's bare failure as a StoreError: a StoreFull when it says the disk is full."""
    text = str(exc)
    if any(sign in text.lower() for sign in _DISK_FULL):
        return StoreFull(f"{engine}: the vector store's disk is full: {text}")
    return StoreError(f"{engine}: {text}")


class StoreUnavailable(StoreError, Unavailable):
    """The engine did not answer (a Qdrant server refused, timed out, 502-504): retry later."""


# ---- the store ---------------------------------------------------------------------------------------------------


class VectorStore(Protocol):
    """One collection of points on one engine. Synchronous and thread-safe; callers in an event loop run the calls
    in a thread."""

    builds_own_index: bool
    """True: the engine indexes in the background by itself (a Qdrant server); False: optimize() must be called
    for the HNSW graph to cover new points (the embedded engine; until then they are searched exactly)."""

    def ensure_collection(self, dim: int, model: str, indexes: Mapping[str, IndexKind] = NO_INDEXES) -> None:
        """Create the collection (cosine vectors of ``dim`` numbers made by ``model``), or check that the existing
        one holds the same dim and model (else CollectionMismatch, nothing changed). ``indexes`` ({field: kind})
        are the payload indexes the caller wants: each one the collection lacks, or has of another kind, is built
        now, on a new collection and on an existing one alike; indexes not asked for are left as they are.
        Idempotent."""
        ...

    @property
    def collection_info(self) -> CollectionInfo | None:
        """dim and model of the collection, or None before it exists."""
        ...

    def upsert(self, points: Sequence[Point]) -> None:
        """Insert or replace points by id (the whole payload is replaced); one bad point stores none of them.
        Visible to reads on return."""
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Delete points by id; unknown ids are ignored."""
        ...

    def set_payload(self, ids: Sequence[str], payload: Mapping[str, Any]) -> None:
        """Merge ``payload``'s keys into each point's payload (other keys stay; the vector stays). PointNotFound,
        and nothing changed, when any of the ids is not stored."""
        ...

    def retrieve(self, ids: Sequence[str], with_vector: bool = False) -> list[Point]:
        """The stored points among ``ids``, in any order; missing ones are left out."""
        ...

    def get(self, id: str, with_vector: bool = False) -> Point | None:
        """The point ``id``, or None."""
        ...

    def count(self, filter: FilterSpec = None) -> int:
        """How many points match ``filter`` (all of them without one); exact."""
        ...

    def query(self, vector: Sequence[float], k: int, filter: FilterSpec = None, exclude: Sequence[str] = (),
              exact: bool = False) -> list[Hit]:
        """The k points nearest to ``vector`` by cosine that match ``filter`` and are not among ``exclude``, best
        first. exact=True searches every point instead of the HNSW graph. k < 1 is InvalidStoreInput."""
        ...

    def scroll(self, limit: int, offset: str | None = None, filter: FilterSpec = None,
               with_vector: bool = False, order_by: str | None = None) -> tuple[list[Point], str | None]:
        """One page of up to ``limit`` points matching ``filter``, in id order, starting at ``offset`` (an id,
        inclusive; None: the first); also returns the offset of the next page, or None after the last.
        ``order_by``: in the order of a datetime field with an index instead, "-field" the newest first; points
        without it are in no page, and ``offset`` is then the previous page's `next` (search/order.py)."""
        ...

    def similar(self, id: str, k: int, filter: FilterSpec = None) -> list[Hit]:
        """More like this: the k points nearest to the stored point ``id``, which is left out; PointNotFound if
        there is none."""
        ...

    def optimize(self) -> None:
        """Bring the HNSW index up to date with what is stored. The embedded engine builds it now (blocking the
        whole process meanwhile: it holds the GIL); a Qdrant server builds it by itself, and this waits until it
        is done."""
        ...

    def stats(self) -> dict[str, int]:
        """points, indexed_vectors (in the HNSW graphs; fewer than points: optimize() is due), segments: the
        engine's own tallies, read in microseconds whatever the size (no walk over the points, unlike count()), and
        so approximate where the engine's are (a Qdrant server's points_count, while it rebuilds segments)."""
        ...

    def unavailable(self) -> str | None:
        """Why the engine cannot serve now (a Qdrant server that does not answer), or None: for readiness."""
        ...

    def close(self) -> None:
        """Release the store (flush, unlock, disconnect); idempotent. Later calls raise StoreError."""
        ...


# ---- the engine --------------------------------------------------------------------------------------------------


class Engine(Protocol):
    """Where collections live, by name (``[A-Za-z0-9_-]+``): what re-indexing needs besides the stores themselves.

    The embedded engine keeps each collection in a folder and opens it in one process at a time (drop and swap
    refuse a collection that is open, with StoreError). A Qdrant server serves a name from a collection or from an
    alias of one."""

    def open(self, collection: str) -> VectorStore:
        """A store on ``collection`` (it may not exist yet: ensure_collection() makes it)."""
        ...

    def drop(self, collection: str) -> None:
        """Delete ``collection`` and all its points; nothing to do when there is none. On a Qdrant server,
        dropping an alias deletes the collection it names, and a collection still served under an alias is refused
        (StoreError): drop the alias's name instead."""
        ...

    def swap(self, current: str, staging: str) -> str | None:
        """Put ``staging`` (a complete collection: ensure_collection() done) in place of ``current``: afterwards
        the name ``current`` serves what ``staging`` held, to stores opened from then on. Returns the name under
        which the old contents of ``current`` are left, for drop(), or None when nothing of them is left.

        The embedded engine exchanges the two folders (atomically where the kernel has renameat2): it returns
        ``staging``, which now holds the old collection (None when there was no ``current``). A Qdrant server
        makes ``current`` an alias of the collection ``staging``, which keeps its name (stores must use
        ``current`` from then on): atomically when ``current`` already is an alias, and then it returns the
        collection the alias named before; when ``current`` is a plain collection, it is deleted first and the
        alias created after (readers see no collection in between), and it returns None."""
        ...

    def close(self) -> None:
        """Release what the engine holds (a server connection); stores it opened are closed first by their
        users. Idempotent."""
        ...
