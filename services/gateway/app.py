"""Gateway: the public API; composes the embedder and search services through their HTTP clients."""
from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from common.http import UpstreamError
from common.images import check_size, decode_image, thumbnail_jpeg
from common.ops import install_ops
from services.embedder.client import EmbedderClient
from services.gateway.payload import parse_json_object, search_filter, user_fields
from services.gateway.photos import PhotoStore, media_type
from services.gateway.schemas import Dog, DogPage, SearchResponse, SearchResult
from services.gateway.settings import GatewaySettings
from services.search.client import SearchClient

DOG_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# Fields a multipart POST /v1/dogs may carry besides the photo; any other form field becomes a user field.
_KNOWN_FORM_FIELDS = {"image", "name", "breed", "payload"}


def dog_id_for(data: bytes) -> str:
    """Ids come from the photo's content, so the same photo uploaded twice is one dog."""
    return str(uuid.UUID(hex=hashlib.sha256(data).hexdigest()[:32]))


class VectorSpace:
    """Makes sure the collection exists for the embedder's model, and that vectors of two models never mix."""

    def __init__(self, embedder: EmbedderClient, search: SearchClient) -> None:
        self._embedder, self._search = embedder, search
        self._lock = asyncio.Lock()
        self.model: str | None = None

    async def ensure(self) -> str:
        if self.model is None:
            async with self._lock:
                if self.model is None:
                    info = await self._embedder.info()
                    await self._search.ensure_collection(info["dim"], info["model"])
                    self.model = info["model"]
        return self.model

    async def check(self, model: str) -> None:
        expected = await self.ensure()
        if model != expected:
            raise HTTPException(409, f"the embedder now serves {model!r} but the collection holds {expected!r} vectors")


def create_app(
    settings: GatewaySettings | None = None,
    *,
    embedder: EmbedderClient | None = None,
    search: SearchClient | None = None,
    sub_apps: tuple[FastAPI, ...] = (),
) -> FastAPI:
    """`sub_apps` are the other services' apps when they run in this process; their lifespans run with ours."""
    settings = settings or GatewaySettings()
    timeout = settings.upstream_timeout_s
    embedder = embedder or EmbedderClient(settings.embedder_url, timeout=timeout)
    search = search or SearchClient(settings.search_url, timeout=timeout)
    photos = PhotoStore(settings.data_dir)
    space = VectorSpace(embedder, search)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with AsyncExitStack() as stack:
            for sub in sub_apps:
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            yield
            await embedder.aclose()
            await search.aclose()

    app = FastAPI(
        title="dogsearch",
        version="0.1.0",
        description="Find the most similar dogs in a collection from a photo.",
        lifespan=lifespan,
    )
    app.state.settings = settings

    async def ready() -> str | None:
        reasons = [r for r in await asyncio.gather(embedder.ready(), search.ready()) if r]
        return "; ".join(reasons) or None

    install_ops(app, "gateway", ready, max_request_bytes=settings.max_upload_bytes + 256 * 1024)

    @app.exception_handler(UpstreamError)
    async def upstream_error(_: Request, exc: UpstreamError) -> JSONResponse:
        # A client error found upstream (a bad image, say) is the caller's; anything else is ours.
        status = exc.status_code if 400 <= exc.status_code < 500 else 503
        return JSONResponse({"detail": f"{exc.service}: {exc.detail}"}, status_code=status)

    def to_dog(point: dict[str, Any], cls=Dog, **extra: Any) -> Any:
        base = f"/v1/dogs/{point['id']}/image"
        return cls(id=point["id"], payload=point["payload"], image_url=base,
                   thumbnail_url=f"{base}?size=thumbnail", **extra)

    async def read_image(upload: UploadFile):
        data = await upload.read(settings.max_upload_bytes + 1)
        check_size(data, settings.max_upload_bytes)
        decoded = await asyncio.to_thread(
            decode_image, data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
        )
        return data, decoded

    async def get_point(dog_id: str) -> dict[str, Any]:
        try:
            return await search.get(dog_id)
        except UpstreamError as exc:
            if exc.status_code in (404, 409):
                raise HTTPException(404, f"no dog {dog_id}") from exc
            raise

    @app.post("/v1/dogs", status_code=201, response_model=Dog, tags=["dogs"],
              responses={200: {"model": Dog, "description": "this photo is already stored: the existing dog"}})
    async def add_dog(
        request: Request,
        response: Response,
        image: UploadFile = File(..., description="a photo of one dog (JPEG, PNG, WebP, GIF, BMP, TIFF)"),
        name: str | None = Form(None, max_length=200),
        breed: str | None = Form(None, max_length=200),
        payload: str | None = Form(None, description="your own fields as a JSON object"),
    ) -> Dog:
        fields = parse_json_object(payload, "payload")
        form = await request.form()
        fields.update({k: v for k, v in form.items() if k not in _KNOWN_FORM_FIELDS and isinstance(v, str)})
        fields.update({k: v for k, v in (("name", name), ("breed", breed)) if v})
        fields = user_fields(fields)

        data, decoded = await read_image(image)
        dog_id = dog_id_for(data)
        try:
            existing = await search.get(dog_id)
        except UpstreamError as exc:
            if exc.status_code not in (404, 409):
                raise
        else:
            response.status_code = 200
            return to_dog(existing)

        model, vectors = await embedder.embed([data])
        await space.check(model)
        thumb = await asyncio.to_thread(thumbnail_jpeg, decoded.image, settings.thumbnail_px)
        record = {
            **fields,
            "sha256": hashlib.sha256(data).hexdigest(),
            "format": decoded.format,
            "width": decoded.width,
            "height": decoded.height,
            "bytes": len(data),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": model,
        }
        await asyncio.to_thread(photos.save, dog_id, decoded.format, data, thumb)
        try:
            await search.upsert([{"id": dog_id, "vector": vectors[0].tolist(), "payload": record}])
        except BaseException:
            # Without its vector the photo is unreachable: don't leave it behind.
            await asyncio.to_thread(photos.delete, dog_id, decoded.format)
            raise
        return to_dog({"id": dog_id, "payload": record})

    @app.get("/v1/dogs", response_model=DogPage, tags=["dogs"])
    async def list_dogs(
        limit: int = Query(20, ge=1, le=settings.max_page),
        cursor: str | None = Query(None, pattern=DOG_ID, description="`next` of the previous page"),
        breed: str | None = None,
        name: str | None = None,
    ) -> DogPage:
        flt = search_filter(breed, name, None)
        try:
            page = await search.scroll(limit, cursor, flt)
            total = await search.count(flt)
        except UpstreamError as exc:
            if exc.status_code != 409:  # no collection yet: an empty gallery
                raise
            return DogPage(items=[], next=None, total=0)
        return DogPage(items=[to_dog(p) for p in page["points"]], next=page["next"], total=total)

    @app.get("/v1/dogs/{dog_id}", response_model=Dog, tags=["dogs"])
    async def get_dog(dog_id: str = Path(..., pattern=DOG_ID)) -> Dog:
        return to_dog(await get_point(dog_id))

    @app.get("/v1/dogs/{dog_id}/image", tags=["dogs"], response_class=FileResponse)
    async def get_image(
        dog_id: str = Path(..., pattern=DOG_ID),
        size: str = Query("original", pattern="^(original|thumbnail)$"),
    ) -> FileResponse:
        point = await get_point(dog_id)
        path = photos.thumbnail(dog_id) if size == "thumbnail" else photos.original(dog_id, point["payload"]["format"])
        if not path.exists():
            raise HTTPException(404, f"photo of dog {dog_id} is missing from the photo store")
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "max-age=86400"})

    @app.delete("/v1/dogs/{dog_id}", status_code=204, tags=["dogs"])
    async def delete_dog(dog_id: str = Path(..., pattern=DOG_ID)) -> Response:
        point = await get_point(dog_id)
        await search.delete(dog_id)  # first the vector, so no search returns a dog whose photo is gone
        await asyncio.to_thread(photos.delete, dog_id, point["payload"]["format"])
        return Response(status_code=204)

    @app.post("/v1/search", response_model=SearchResponse, tags=["search"])
    async def search_dogs(
        image: UploadFile = File(..., description="a photo of a dog"),
        k: int = Form(10, ge=1, le=settings.max_k),
        breed: str | None = Form(None),
        name: str | None = Form(None),
        filter: str | None = Form(None, description='JSON object, e.g. {"color": ["brown", "black"]}'),
    ) -> SearchResponse:
        start = time.perf_counter()
        flt = search_filter(breed, name, filter)
        data, _ = await read_image(image)
        model, vectors = await embedder.embed([data])
        await space.check(model)
        hits = await search.query(vectors[0], k, flt)
        return SearchResponse(
            results=[to_dog(h, SearchResult, score=h["score"]) for h in hits],
            took_ms=round((time.perf_counter() - start) * 1000, 2),
        )

    @app.get("/v1/dogs/{dog_id}/similar", response_model=SearchResponse, tags=["search"])
    async def similar(
        dog_id: str = Path(..., pattern=DOG_ID),
        k: int = Query(10, ge=1, le=settings.max_k),
        breed: str | None = None,
        name: str | None = None,
        filter: str | None = Query(None, description="JSON object of field -> value(s)"),
    ) -> SearchResponse:
        start = time.perf_counter()
        try:
            hits = await search.similar(dog_id, k, search_filter(breed, name, filter))
        except UpstreamError as exc:
            if exc.status_code in (404, 409):
                raise HTTPException(404, f"no dog {dog_id}") from exc
            raise
        return SearchResponse(
            results=[to_dog(h, SearchResult, score=h["score"]) for h in hits],
            took_ms=round((time.perf_counter() - start) * 1000, 2),
        )

    return app
