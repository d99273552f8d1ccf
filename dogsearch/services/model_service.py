"""What the two model services (embedder, pose) share: a FastAPI app around one lazily built, batched model, its
memory set up for torch, its lifespan loading it (or not: `preload`), its readiness the model's state."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from dogsearch.core.memory import tune_malloc
from dogsearch.core.settings import InferenceSettings
from dogsearch.inference.runner import BatchedModel
from dogsearch.services.ops import install_ops


def model_service(name: str, settings: InferenceSettings, cache: BatchedModel, *, preload: bool,
                  max_request_bytes: int, lazy_is_ready: bool = False) -> FastAPI:
    """The app, its routes still to add. `lazy_is_ready`: ready before the model is loaded (it loads on the first
    request that needs it)."""
    if settings.tune_malloc:
        tune_malloc()  # before the model's threads allocate

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with cache.running(preload):
            yield

    app = FastAPI(title=f"dogsearch {name}", version="0.1.0", lifespan=lifespan)
    app.state.cache, app.state.settings = cache, settings

    async def ready() -> str | None:
        return cache.readiness(preload, lazy_is_ready=lazy_is_ready)

    internal_key = settings.internal_key.get_secret_value() if settings.internal_key else None
    install_ops(app, name, ready, max_request_bytes=max_request_bytes, internal_key=internal_key)
    return app
