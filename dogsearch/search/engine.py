"""Which engine holds the collections: the embedded one (default) or a Qdrant server, chosen by plain arguments
(the search service's settings give them: SearchSettings.engine_options())."""
from __future__ import annotations

from pathlib import Path

from dogsearch.search.contract import Engine, InvalidStoreInput, Quantization, VectorStore
from dogsearch.search.edge import MIN_FREE_BYTES, EdgeEngine, EdgeStore

# dogsearch.search.qdrant is imported only where a server is asked for: qdrant-client takes most of a second to
# import, which every start of the embedded default would pay


def open_engine(
    *,
    data_dir: Path | str | None = None,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 30.0,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    min_free_bytes: int = MIN_FREE_BYTES,
    hnsw_ef: int | None = None,
    quantization: Quantization = "none",
    oversampling: float = 2.0,
) -> Engine:
    """``qdrant_url`` given: that server (or cluster); else the embedded engine's collections under ``data_dir``.
    The sharding options are sent when a collection is created on a server (None: the server's defaults);
    ``min_free_bytes``, ``hnsw_ef``, ``quantization`` and ``oversampling`` are the embedded engine's (see EdgeStore;
    a server watches its own disk and has its collections' own index and quantisation settings)."""
    if qdrant_url is None:
        return EdgeEngine(_data_dir(data_dir), min_free_bytes=min_free_bytes, hnsw_ef=hnsw_ef,
                          quantization=quantization, oversampling=oversampling)
    from dogsearch.search.qdrant import QdrantEngine

    return QdrantEngine.connect(
        qdrant_url, api_key=api_key, timeout_s=timeout_s, shard_number=shard_number,
        replication_factor=replication_factor, write_consistency_factor=write_consistency_factor,
    )


def open_store(
    collection: str = "dogs",
    *,
    data_dir: Path | str | None = None,
    qdrant_url: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 30.0,
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    min_free_bytes: int = MIN_FREE_BYTES,
    hnsw_ef: int | None = None,
    quantization: Quantization = "none",
    oversampling: float = 2.0,
) -> VectorStore:
    """The store of ``collection`` on the engine open_engine() would pick; it holds its own connection."""
    if qdrant_url is None:
        return EdgeStore(_data_dir(data_dir), collection, min_free_bytes=min_free_bytes, hnsw_ef=hnsw_ef,
                         quantization=quantization, oversampling=oversampling)
    from dogsearch.search.qdrant import QdrantStore

    return QdrantStore.connect(
        qdrant_url, collection, api_key=api_key, timeout_s=timeout_s, shard_number=shard_number,
        replication_factor=replication_factor, write_consistency_factor=write_consistency_factor,
    )


def _data_dir(data_dir: Path | str | None) -> Path:
    if data_dir is None:
        raise InvalidStoreInput("the embedded engine needs a data_dir (or give a qdrant_url)")
    return Path(data_dir)
