"""Gateway: the public API; composes the embedder and search services through their HTTP clients."""
from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from common.http import UpstreamError
from common.images import check_size
from common.ops import install_ops
from services.embedder.client import EmbedderClient
from services.gateway.ingest import Ingestor, Upload, VectorSpace
from services.gateway.payload import parse_json_object, search_filter, user_fields
from services.gateway.photos import PhotoStore, media_type
from services.gateway.schemas import Dog, DogPage, SearchResponse, SearchResult
from services.gateway.settings import GatewaySettings
from services.search.client import SearchClient

DOG_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# Fields a multipart POST /v1/dogs may carry besides the photo; any other form field becomes a user field.
_KNOWN_FORM_FIELDS = {"image", "name", "breed", "payload"}


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
    ingestor = Ingestor(embedder, search, photos, VectorSpace(embedder, search),
                        max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels,
                        thumbnail_px=settings.thumbnail_px)

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
    app.state.ingestor = ingestor

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

    async def read_upload(upload: UploadFile) -> bytes:
        data = await upload.read(settings.max_upload_bytes + 1)
        check_size(data, settings.max_upload_bytes)
        return data

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

        data = await read_upload(image)
        added = await ingestor.add(Upload(data, fields))
        if not added.created:
            response.status_code = 200
        return to_dog({"id": added.id, "payload": added.payload})

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
        data = await read_upload(image)
        await ingestor.decode(data)  # the same checks, and the same 4xx, as an upload
        model, vectors = await embedder.embed([data])
        await ingestor.space.check(model)
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
