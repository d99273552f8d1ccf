"""Which engine holds the collection: the embedded one (default) or a Qdrant server, chosen by settings."""
from __future__ import annotations

from dogsearch.search.edge import EdgeStore
from dogsearch.search.qdrant import ServerStore
from dogsearch.services.search.settings import SearchSettings

VectorStore = EdgeStore | ServerStore  # the same methods; see dogsearch/search/edge.py for what they mean


def open_store(settings: SearchSettings) -> VectorStore:
    """DOGSEARCH_SEARCH_QDRANT_URL set: the collection on that server; unset: the embedded engine in data_dir."""
    if settings.qdrant_url is None:
        return EdgeStore(settings.data_dir, settings.collection)
    return ServerStore.connect(
        settings.qdrant_url,
        settings.collection,
        api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
        timeout_s=settings.qdrant_timeout_s,
        shard_number=settings.qdrant_shard_number,
        replication_factor=settings.qdrant_replication_factor,
        write_consistency_factor=settings.qdrant_write_consistency_factor,
    )


def unavailable(store: VectorStore) -> str | None:
    """Why the engine can't serve now (a Qdrant server not answering), or None; the embedded one always can."""
    return store.unavailable() if isinstance(store, ServerStore) else None


def builds_its_own_index(store: VectorStore) -> bool:
    """A Qdrant server indexes in the background; the embedded engine needs optimize() calls."""
    return isinstance(store, ServerStore)
