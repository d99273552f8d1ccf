"""The vector space of a gallery: one collection for the embedder's model, and never vectors of two models."""
from __future__ import annotations

import asyncio

from dogsearch.core.errors import DogsearchError, NotFound
from dogsearch.gallery.contracts import Embedder, Index
from dogsearch.gallery.errors import ModelMismatch
from dogsearch.gallery.fields import INDEXED_FIELDS


class VectorSpace:
    """Makes sure the collection exists for the embedder's model, and that vectors of two models never mix. The model is
    the id of the vectors the embedder gives of dogs (its network and how it crops dogs for it)."""

    def __init__(self, embedder: Embedder, index: Index) -> None:
        self._embedder, self._index = embedder, index
        self._lock = asyncio.Lock()
        self.model: str | None = None

    async def ensure(self) -> str:
        if self.model is None:
            async with self._lock:
                if self.model is None:
                    info = await self._embedder.info()
                    await self._index.ensure_collection(info["dim"], info["model"], INDEXED_FIELDS)
                    self.model = info["model"]
        return self.model

    async def mismatch(self) -> str | None:
        """Why the collection cannot take the embedder's vectors (another model's), or None: for readiness (a
        gallery left on another model answers every search and every new dog with a 409). Asks both services each
        time (an embedder redeployed with another model behind a running gateway), and writes and counts nothing."""
        try:
            stored = await self._index.collection()
            serves = await self._embedder.info()
        except NotFound:  # nothing stored yet: the first dog makes it for this model
            return None
        except DogsearchError as exc:  # a service went away between the checks: said, not a 500
            return str(exc)
        if (serves["dim"], serves["model"]) == (stored["dim"], stored["model"]):
            return None
        return (f"the gallery holds {stored['model']!r} vectors but the embedder serves {serves['model']!r}: "
                "`dogsearch reindex` moves the gallery to it")

    async def check(self, model: str) -> None:
        expected = await self.ensure()
        if model != expected:
            raise ModelMismatch(f"the embedder now serves {model!r} but the collection holds {expected!r} vectors")
