"""Search service: owns the vector collection (embedded Qdrant engine, or a Qdrant server by URL) behind the
VectorStore contract; the routes (routers/) are HTTP only."""
from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dogsearch.search.engine import open_store
from dogsearch.services.ops import install_ops
from dogsearch.services.search.indexing import IndexBuilder
from dogsearch.services.search.metrics import StoredPoints
from dogsearch.services.search.routers import ALL as ROUTERS
from dogsearch.services.search.settings import SearchSettings

log = logging.getLogger("dogsearch.search")


def create_app(settings: SearchSettings | None = None) -> FastAPI:
    settings = settings or SearchSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = await asyncio.to_thread(open_store, settings.collection, **settings.engine_options())
        builder = IndexBuilder(store, settings.optimize_after, settings.optimize_idle_s)
        app.state.store, app.state.builder = store, builder
        log.info("store open", extra={"engine": type(store).__name__, "collection": settings.collection,
                                      "where": settings.qdrant_url or str(settings.data_dir)})
        # A Qdrant server builds its index by itself; only the embedded engine needs the idle-time builds.
        task = None if store.builds_own_index else asyncio.create_task(builder.run_forever())
        try:
            yield
        finally:  # also when the block of an in-process user (the CLI) raised: the store's lock goes with it
            if task is not None:
                task.cancel()
            app.state.store = None
            await asyncio.to_thread(store.close)

    app = FastAPI(title="dogsearch search", version="0.1.0", lifespan=lifespan)
    app.state.settings, app.state.store = settings, None

    async def ready() -> str | None:
        store = app.state.store
        return "store not open" if store is None else await asyncio.to_thread(store.unavailable)

    install_ops(app, "search", ready,
                internal_key=settings.internal_key.get_secret_value() if settings.internal_key else None,
                collectors=[StoredPoints(lambda: app.state.store)])
    for router in ROUTERS:
        app.include_router(router)
    return app
