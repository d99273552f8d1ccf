"""What the search service's routes depend on: the open store and its index builder (made by the app's lifespan),
and the settings."""
from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import Depends, Request

from dogsearch.core.errors import Unavailable
from dogsearch.search.contract import InvalidStoreInput, VectorStore
from dogsearch.services.search.indexing import IndexBuilder
from dogsearch.services.search.settings import SearchSettings


def _store(request: Request) -> VectorStore:
    store = getattr(request.app.state, "store", None)
    if store is None:
        raise Unavailable("store not open")
    return store


def _builder(request: Request) -> IndexBuilder:
    return request.app.state.builder


def _settings(request: Request) -> SearchSettings:
    return request.app.state.settings


StoreDep = Annotated[VectorStore, Depends(_store)]
BuilderDep = Annotated[IndexBuilder, Depends(_builder)]
SettingsDep = Annotated[SearchSettings, Depends(_settings)]


async def run(fn, *args: Any, **kwargs: Any) -> Any:
    """A store call off the event loop; its errors are answered by the error mapping."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def check_k(k: int, settings: SearchSettings) -> int:
    if k > settings.max_k:
        raise InvalidStoreInput(f"k must be at most {settings.max_k}")
    return k
