"""Embedder service: images in, L2-normalised vectors out."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI, File, UploadFile
from PIL import Image

from dogsearch.core.errors import TooLarge
from dogsearch.core.images import ImageRejected
from dogsearch.core.vectors import encode_f32
from dogsearch.inference.runner import ModelUnavailable
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.services.embedder.cache import ModelCache
from dogsearch.services.embedder.schemas import EmbedResponse, ModelInfo
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.model_service import model_service


def create_app(
    settings: EmbedderSettings | None = None, model_factory: Callable[[], EmbeddingModel] | None = None
) -> FastAPI:
    settings = settings or EmbedderSettings()
    cache = ModelCache(model_factory or settings.build_model, **settings.batching())
    limits = settings.image_limits()
    app = model_service("embedder", settings, cache, preload=settings.preload,
                        max_request_bytes=settings.max_batch * settings.max_image_bytes + 1024 * 1024)

    @app.get("/v1/info", response_model=ModelInfo)
    async def info() -> ModelInfo:
        model = await cache.aget()
        return ModelInfo(model=model.model_id, dim=model.dim, device=settings.device,
                         precision=settings.precision, data_config=_jsonable(model.data_config))

    @app.post("/v1/embed", response_model=EmbedResponse)
    async def embed(images: list[UploadFile] = File(..., description="one or more image files"),
                    encoding: Literal["json", "base64"] = "json") -> EmbedResponse:
        if len(images) > settings.max_batch:
            raise TooLarge(f"too many images: {len(images)}, limit {settings.max_batch}")
        files = [(upload.filename or f"#{index}", await upload.read()) for index, upload in enumerate(images)]
        try:
            model, unavailable = await cache.aget(), None
        except ModelUnavailable as exc:
            model, unavailable = None, exc

        def decode_all() -> list[Image.Image]:  # bad input is a 4xx whether or not the model is up
            decoded = []
            for index, (name, data) in enumerate(files):
                try:
                    if model is None:  # the answer is a 503 anyway: check the headers, decode nothing
                        limits.probe(data)
                        continue
                    image = limits.decode(data, min_side=model.decode_side)
                except ImageRejected as exc:
                    if len(files) == 1:
                        raise
                    raise type(exc)(f"image {index} ({name}): {exc.reason}") from exc  # say which one
                decoded.append(image.image)
            return decoded

        decoded = await asyncio.to_thread(decode_all)
        if model is None:
            raise unavailable
        # Preprocessing here, not on the inference thread: it overlaps the forward of other requests.
        tensors = await asyncio.to_thread(lambda: [model.preprocess(im) for im in decoded])
        vectors = await cache.embed(tensors)
        out = [encode_f32(v) for v in vectors] if encoding == "base64" else vectors.tolist()
        return EmbedResponse(model=model.model_id, dim=model.dim, vectors=out)

    return app


def _jsonable(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
