"""The collection: create or check it, read it, its index's state, build the index now."""
from __future__ import annotations

from fastapi import APIRouter, Query

from dogsearch.core.errors import NotFound
from dogsearch.search.contract import VectorStore
from dogsearch.services.search import schemas as s
from dogsearch.services.search.deps import BuilderDep, StoreDep, run

router = APIRouter()


@router.put("/v1/collection", response_model=s.CollectionInfo)
async def ensure_collection(store: StoreDep, spec: s.CollectionSpec) -> s.CollectionInfo:
    """Creates the collection, or checks the existing one holds the same dim and model; builds the payload indexes
    asked for that it lacks."""
    await run(store.ensure_collection, spec.dim, spec.model, spec.indexes)
    return await _info(store, count=True)


@router.get("/v1/collection", response_model=s.CollectionInfo, response_model_exclude_none=True)
async def collection_info(store: StoreDep, count: bool = Query(True, description=s.COUNT)) -> s.CollectionInfo:
    return await _info(store, count)


async def _info(store: VectorStore, count: bool) -> s.CollectionInfo:
    info = await run(lambda: store.collection_info)  # the store's metadata; a server store may have to ask the server
    if info is None:
        raise NotFound("collection not created yet")
    return s.CollectionInfo(dim=info.dim, model=info.model, count=await run(store.count) if count else None)


@router.get("/v1/stats")
async def stats(store: StoreDep) -> dict:
    return await run(store.stats)


@router.post("/v1/optimize")
async def optimize(store: StoreDep, builder: BuilderDep) -> dict:
    """Builds the HNSW index now (the process answers nothing else meanwhile)."""
    await builder.build()
    return await run(store.stats)
