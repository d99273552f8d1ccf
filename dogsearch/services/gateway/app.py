"""Gateway: the public API; composes the embedder and search services through their HTTP clients."""
from __future__ import annotations

import asyncio
import functools
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse

from dogsearch.core.errors import NotFound
from dogsearch.core.images import ImageRejected, check_size
from dogsearch.gallery.errors import DogNotFound, PhotoDamaged, PhotoMissing
from dogsearch.gallery.fields import parse_json_object, search_filter, user_fields
from dogsearch.gallery.ingest import Ingestor, Upload
from dogsearch.gallery.photos import media_type
from dogsearch.jobs.service import Jobs
from dogsearch.jobs.settings import JobsSettings
from dogsearch.search.contract import CollectionMissing
from dogsearch.services.embedder.client import EmbedderClient
from dogsearch.services.gateway.jobs import jobs_router
from dogsearch.services.gateway.pose import GatewayPose, pose_router
from dogsearch.services.gateway.schemas import Dog, DogPage, SearchResponse, SearchResult
from dogsearch.services.gateway.security import ApiKeyGuard, RateLimit
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.gateway.web import DEFAULT_WEB_DIR, install_web
from dogsearch.services.ops import install_ops
from dogsearch.services.pose.client import PoseClient
from dogsearch.services.search.client import SearchClient

DOG_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# Fields a multipart POST /v1/dogs may carry besides the photo; any other form field becomes a user field.
_KNOWN_FORM_FIELDS = {"image", "name", "breed", "payload"}


def create_app(
    settings: GatewaySettings | None = None,
    *,
    embedder: EmbedderClient | None = None,
    search: SearchClient | None = None,
    pose: PoseClient | None = None,
    sub_apps: tuple[FastAPI, ...] = (),
    jobs_settings: JobsSettings | None = None,
) -> FastAPI:
    """`sub_apps` are the other services' apps when they run in this process; their lifespans run with ours."""
    settings = settings or GatewaySettings()
    timeout = settings.upstream_timeout_s
    embedder = embedder or EmbedderClient(settings.embedder_url, timeout=timeout)
    search = search or SearchClient(settings.search_url, timeout=timeout)
    pose = pose or PoseClient(settings.pose_url, timeout=timeout)
    ingestor = Ingestor.from_settings(settings, embedder, search)
    photos = ingestor.photos
    jobs = Jobs(jobs_settings or JobsSettings(), ingestor)  # bulk jobs: Celery workers, or in this process

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with AsyncExitStack() as stack:
            for sub in sub_apps:
                await stack.enter_async_context(sub.router.lifespan_context(sub))
            async with jobs.running():  # stops the embedded job runner before the clients close
                yield
            await embedder.aclose()
            await search.aclose()
            await pose.aclose()

    app = FastAPI(
        title="dogsearch",
        version="0.1.0",
        description="Find the most similar dogs in a collection from a photo.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ingestor = ingestor
    app.state.jobs = jobs

    async def ready() -> str | None:
        reasons = [r for r in await asyncio.gather(embedder.ready(), search.ready()) if r]
        return "; ".join(reasons) or None

    # The largest body is a job's zip upload; every route still checks its own limit.
    # Bodies are refused before they are read: a photo's limit everywhere, a zip's only where zips go.
    install_ops(app, "gateway", ready, max_request_bytes=settings.max_upload_bytes + 256 * 1024,
                body_limits={"/v1/jobs/index/upload": jobs.settings.max_archive_bytes + 256 * 1024})
    # Added last = runs first: refuse what is not allowed before reading any body.
    if settings.api_key is not None:
        app.add_middleware(ApiKeyGuard, key=settings.api_key.get_secret_value())
    if settings.rate_limit_per_minute:
        app.add_middleware(RateLimit, per_minute=settings.rate_limit_per_minute, burst=settings.rate_limit_burst)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"])
    install_web(app, settings.web_dir or DEFAULT_WEB_DIR)
    app.include_router(jobs_router(jobs))

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
        except (NotFound, CollectionMissing) as exc:
            raise DogNotFound(f"no dog {dog_id}") from exc

    gateway_pose = GatewayPose(pose, photos, get_point, rerank_weight=settings.pose_rerank_weight)
    # The overlay is drawn in the photo's own pixels: decoded whole, not shrunk.
    app.include_router(pose_router(gateway_pose, read_upload, functools.partial(ingestor.decode, shrink=False)))

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
        except CollectionMissing:  # nothing stored yet: an empty gallery
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
        fmt = (await get_point(dog_id))["payload"]["format"]
        if size == "thumbnail":
            try:
                path = await asyncio.to_thread(photos.thumbnail, dog_id, fmt)
            except ImageRejected as exc:  # the stored original was checked when it came in: damaged since
                raise PhotoDamaged(f"cannot make the thumbnail of dog {dog_id}: {exc.reason}") from exc
        else:
            path = photos.original(dog_id, fmt)
        if path is None or not path.exists():
            raise PhotoMissing(f"photo of dog {dog_id} is missing from the photo store")
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
        pose: bool = Form(False, description="add each result's pose and the query's (query_pose)"),
        rerank: Literal["none", "pose"] = Form("none", description="'pose': re-order by body proportions too"),
    ) -> SearchResponse:
        start = time.perf_counter()
        flt = search_filter(breed, name, filter)
        data = await read_upload(image)
        await ingestor.decode(data)  # the same checks, and the same 4xx, as an upload
        model, vectors = await embedder.embed([data])
        await ingestor.space.check(model)
        if not pose and rerank == "none":
            hits = await search.query(vectors[0], k, flt)
            return SearchResponse(
                results=[to_dog(h, SearchResult, score=h["score"]) for h in hits],
                took_ms=round((time.perf_counter() - start) * 1000, 2),
            )
        # re-ranking looks at more candidates than it returns
        depth = min(settings.max_k, k * settings.pose_rerank_depth) if rerank == "pose" else k
        hits = await search.query(vectors[0], depth, flt)
        query_pose, poses = await asyncio.gather(
            gateway_pose.client.pose(data), asyncio.gather(*(gateway_pose.for_dog(h["id"], h) for h in hits)))
        ranked = (gateway_pose.rerank(query_pose, hits, list(poses)) if rerank == "pose"
                  else [(h["score"], h, p) for h, p in zip(hits, poses, strict=True)])
        return SearchResponse(
            results=[to_dog(h, SearchResult, score=h["score"], pose=p if pose else None,
                            rerank_score=round(s, 6) if rerank == "pose" else None) for s, h, p in ranked[:k]],
            query_pose=query_pose if pose else None,
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
        except (NotFound, CollectionMissing) as exc:
            raise DogNotFound(f"no dog {dog_id}") from exc
        return SearchResponse(
            results=[to_dog(h, SearchResult, score=h["score"]) for h in hits],
            took_ms=round((time.perf_counter() - start) * 1000, 2),
        )

    return app
