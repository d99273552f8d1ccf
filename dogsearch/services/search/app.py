"""Search service: owns the vector collection (embedded Qdrant engine, or a Qdrant server by URL)."""
from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response

from dogsearch.core.errors import NotFound, Unavailable
from dogsearch.core.vectors import decode_f32
from dogsearch.search.contract import InvalidStoreInput, Point, PointNotFound, StoreError, VectorStore
from dogsearch.search.engine import open_store
from dogsearch.services.ops import install_ops
from dogsearch.services.search import schemas as s
from dogsearch.services.search.settings import SearchSettings

log = logging.getLogger("dogsearch.search")


class IndexBuilder:
    """Rebuilds the HNSW index once enough points changed, at a quiet moment.

    qdrant-edge holds the GIL for the whole of optimize() (seconds at 10k points, ~30 s at 100k), so the
    process answers nothing while it runs, and only one process may open the store. So it runs only after
    `idle_s` without writes; until then new points are still found, by exact search over the unindexed part."""

    def __init__(self, store: VectorStore, every: int, idle_s: float) -> None:
        self._store, self._every, self._idle_s = store, every, idle_s
        self._changed = 0
        self._last_write = time.monotonic()

    def note_changes(self, n: int) -> None:
        self._changed += n
        self._last_write = time.monotonic()

    @property
    def due(self) -> bool:
        return self._changed >= self._every and time.monotonic() - self._last_write >= self._idle_s

    async def run_forever(self, poll_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(poll_s)
            if self.due:
                await self.build()

    async def build(self) -> None:
        changed, self._changed = self._changed, 0
        start = time.perf_counter()
        try:
            await asyncio.to_thread(self._store.optimize)
        except StoreError:
            self._changed += changed
            log.exception("index build failed")
            return
        log.info("index built", extra={"seconds": round(time.perf_counter() - start, 2), **self._store.stats()})


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    settings = settings or SearchSettings()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        store = await asyncio.to_thread(open_store, settings.collection, **settings.engine_options())
        builder = IndexBuilder(store, settings.optimize_after, settings.optimize_idle_s)
        state["store"], state["builder"] = store, builder
        log.info("store open", extra={"engine": type(store).__name__, "collection": settings.collection,
                                      "where": settings.qdrant_url or str(settings.data_dir)})
        # A Qdrant server builds its index by itself; only the embedded engine needs the idle-time builds.
        task = None if store.builds_own_index else asyncio.create_task(builder.run_forever())
        yield
        if task is not None:
            task.cancel()
        await asyncio.to_thread(store.close)
        state.clear()

    app = FastAPI(title="dogsearch search", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings

    def store() -> VectorStore:
        if "store" not in state:
            raise Unavailable("store not open")
        return state["store"]

    async def run(fn, *args, **kwargs):
        """A store call off the event loop; its errors are answered by the error mapping."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def ready() -> str | None:
        if "store" not in state:
            return "store not open"
        return await asyncio.to_thread(state["store"].unavailable)

    install_ops(app, "search", ready)

    @app.put("/v1/collection", response_model=s.CollectionInfo)
    async def ensure_collection(spec: s.CollectionSpec) -> s.CollectionInfo:
        """Creates the collection, or checks the existing one holds the same dim and model; builds the payload
        indexes asked for that it lacks."""
        await run(store().ensure_collection, spec.dim, spec.model, spec.indexes)
        return await collection_info()

    @app.get("/v1/collection", response_model=s.CollectionInfo)
    async def collection_info() -> s.CollectionInfo:
        info = await run(lambda: store().collection_info)  # a server store may have to ask the server
        if info is None:
            raise NotFound("collection not created yet")
        return s.CollectionInfo(dim=info.dim, model=info.model, count=await run(store().count))

    @app.put("/v1/points")
    async def upsert(body: s.UpsertRequest) -> dict:
        try:
            points = [Point(id=p.id, vector=decode_f32(p.vector) if isinstance(p.vector, str) else p.vector,
                            payload=p.payload) for p in body.points]
        except ValueError as exc:
            raise InvalidStoreInput(f"vector: {exc}") from exc
        await run(store().upsert, points)
        state["builder"].note_changes(len(points))
        return {"upserted": len(points)}

    @app.get("/v1/points/{point_id}", response_model=s.PointOut)
    async def get_point(point_id: str, with_vector: bool = False) -> s.PointOut:
        point = await run(store().get, point_id, with_vector)
        if point is None:
            raise PointNotFound(f"no point {point_id}")
        return s.PointOut(id=point.id, payload=point.payload, vector=point.vector)

    @app.post("/v1/points/lookup", response_model=s.LookupResponse)
    async def lookup(body: s.LookupRequest) -> s.LookupResponse:
        """Many ids in one call (bulk ingestion asks which of a batch's photos are stored already)."""
        points = await run(store().retrieve, body.ids, body.with_vector)
        return s.LookupResponse(points=[s.PointOut(id=p.id, payload=p.payload, vector=p.vector) for p in points])

    @app.post("/v1/points/payload")
    async def set_payload(body: s.SetPayloadRequest) -> dict:
        """Merges the payload's keys into each point's payload; 404, and nothing changed, if any id is unknown."""
        await run(store().set_payload, body.ids, body.payload)
        return {"updated": len(set(body.ids))}

    @app.delete("/v1/points/{point_id}", status_code=204)
    async def delete_point(point_id: str) -> Response:
        if await run(store().get, point_id) is None:
            raise PointNotFound(f"no point {point_id}")
        await run(store().delete, [point_id])
        state["builder"].note_changes(1)
        return Response(status_code=204)

    @app.post("/v1/points/scroll", response_model=s.ScrollResponse)
    async def scroll(body: s.ScrollRequest) -> s.ScrollResponse:
        points, nxt = await run(store().scroll, body.limit, body.offset, s.filter_spec(body.filter))
        return s.ScrollResponse(points=[s.PointOut(id=p.id, payload=p.payload) for p in points], next=nxt)

    @app.post("/v1/points/count")
    async def count(body: s.CountRequest) -> dict:
        return {"count": await run(store().count, s.filter_spec(body.filter))}

    @app.post("/v1/query", response_model=s.Hits)
    async def query(body: s.QueryRequest) -> s.Hits:
        k = _check_k(body.k, settings.max_k)
        hits = await run(store().query, body.vector, k, s.filter_spec(body.filter), body.exclude)
        return s.Hits(hits=[s.Hit(id=h.id, score=h.score, payload=h.payload) for h in hits])

    @app.post("/v1/points/{point_id}/similar", response_model=s.Hits)
    async def similar(point_id: str, body: s.SimilarRequest) -> s.Hits:
        k = _check_k(body.k, settings.max_k)
        hits = await run(store().similar, point_id, k, s.filter_spec(body.filter))
        return s.Hits(hits=[s.Hit(id=h.id, score=h.score, payload=h.payload) for h in hits])

    @app.get("/v1/stats")
    async def stats() -> dict:
        return await run(store().stats)

    @app.post("/v1/optimize")
    async def optimize() -> dict:
        """Builds the HNSW index now (the process answers nothing else meanwhile)."""
        store()
        await state["builder"].build()
        return await run(store().stats)

    return app


def _check_k(k: int, max_k: int) -> int:
    if k > max_k:
        raise InvalidStoreInput(f"k must be at most {max_k}")
    return k
