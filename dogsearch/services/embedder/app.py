"""Embedder service: images in, L2-normalised vectors out."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Literal

from fastapi import FastAPI, File, Form, Query, UploadFile

from dogsearch.core.boxes import BadBox
from dogsearch.core.errors import TooLarge
from dogsearch.core.images import DecodedImage, ImageRejected
from dogsearch.core.phash import dhash, to_hex
from dogsearch.core.vectors import encode_f32
from dogsearch.inference.runner import ModelUnavailable
from dogsearch.models.detect import Detector
from dogsearch.models.dogclass import DogClassifier
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.services.embedder.cache import ModelCache
from dogsearch.services.embedder.dogs import (
    ClassifierCache,
    DetectorCache,
    DogModels,
    breeds,
    crop_model_id,
    marked_boxes,
)
from dogsearch.services.embedder.schemas import DogsResponse, EmbedResponse, ModelInfo
from dogsearch.services.embedder.settings import NO_DETECTOR, EmbedderSettings
from dogsearch.services.errors import status_of
from dogsearch.services.model_service import model_service

Encoding = Literal["json", "base64"]


def create_app(
    settings: EmbedderSettings | None = None, model_factory: Callable[[], EmbeddingModel] | None = None, *,
    detector_factory: Callable[[], Detector] | None = None,
    classifier_factory: Callable[[], DogClassifier] | None = None,
) -> FastAPI:
    """The factories default to the settings' models (`detector_factory` only where the settings name a
    detector)."""
    settings = settings or EmbedderSettings()
    batching = settings.batching()
    cache = ModelCache(model_factory or settings.build_model, **batching)
    small = settings.small_models_batching()
    detector = (DetectorCache(detector_factory or settings.build_detector, **small) if settings.detects else None)
    models = DogModels(cache, detector, ClassifierCache(classifier_factory or settings.build_classifier, **small))
    detector_name = settings.detector if settings.detects else NO_DETECTOR
    limits = settings.image_limits()
    app = model_service("embedder", settings, models, preload=settings.preload,
                        max_request_bytes=settings.max_batch * settings.max_image_bytes + 1024 * 1024)

    def dogs_model(model: EmbeddingModel) -> str:
        return crop_model_id(model.model_id) if settings.detects else model.model_id

    @app.get("/v1/info", response_model=ModelInfo)
    async def info() -> ModelInfo:
        model = await cache.aget()
        return ModelInfo(model=dogs_model(model), base_model=model.model_id, detector=detector_name, dim=model.dim,
                         device=settings.device, precision=settings.precision,
                         runtime=getattr(model, "runtime", settings.runtime),
                         data_config=_jsonable(model.data_config))

    async def read_and_decode(images: list[UploadFile], min_side: Callable[[EmbeddingModel], int],
                              partial: bool = False) -> tuple[EmbeddingModel, list[DecodedImage | ImageRejected]]:
        """The model and the decoded photos; bad input is a 4xx whether or not the model is up. `partial`: a photo
        that cannot be read is its error in the list, not the request's."""
        if len(images) > settings.max_batch:
            raise TooLarge(f"too many images: {len(images)}, limit {settings.max_batch}")
        files = [(upload.filename or f"#{index}", await upload.read()) for index, upload in enumerate(images)]
        try:
            model, unavailable = await cache.aget(), None
        except ModelUnavailable as exc:
            model, unavailable = None, exc

        def decode_all() -> list[DecodedImage]:
            decoded = []
            for index, (name, data) in enumerate(files):
                try:
                    if model is None:  # the answer is a 503 anyway: check the headers, decode nothing
                        limits.probe(data)
                        continue
                    decoded.append(limits.decode(data, min_side=min_side(model)))
                except ImageRejected as exc:
                    if partial and model is not None:
                        decoded.append(exc)
                        continue
                    if len(files) == 1:
                        raise
                    raise type(exc)(f"image {index} ({name}): {exc.reason}") from exc  # say which one
            return decoded

        decoded = await asyncio.to_thread(decode_all)
        if model is None:
            raise unavailable
        return model, decoded

    @app.post("/v1/embed", response_model=EmbedResponse)
    async def embed(images: list[UploadFile] = File(..., description="one or more image files"),
                    encoding: Encoding = "json") -> EmbedResponse:
        """The whole photos' vectors."""
        model, decoded = await read_and_decode(images, lambda m: m.decode_side)
        # Preprocessing here, not on the inference thread: it overlaps the forward of other requests.
        tensors = await asyncio.to_thread(lambda: [model.preprocess(d.image) for d in decoded])
        vectors = await cache.embed(tensors)
        out = [encode_f32(v) for v in vectors] if encoding == "base64" else vectors.tolist()
        return EmbedResponse(model=model.model_id, dim=model.dim, vectors=out)

    @app.post("/v1/embed/dogs", response_model=DogsResponse)
    async def embed_dogs(
        images: list[UploadFile] = File(..., description="one or more image files"),
        encoding: Encoding = "json",
        whole_if_none: bool = Query(False, description="a photo in which no dog is found is one dog: the whole "
                                                       "photo, score null"),
        vectors: bool = Query(True, description="false: boxes and guesses only (no embedding)"),
        seems: bool = Query(True, description="false: what a photo seems to show only for a photo without a dog "
                                              "(what 'no dog found' says), one classifier pass less a photo"),
        phash: bool = Query(False, description="true: each photo's perceptual hash too (what a new photo is checked "
                                               "for copies by; 2-14 ms a photo, by its decoded size)"),
        partial: bool = Query(False, description="true: a photo that cannot be read (truncated, not an image, too "
                                                 "large) is answered alone, as its error, and the others as usual; "
                                                 "false: the request is refused, naming the photo"),
        boxes: str | None = Form(None, max_length=128 * settings.max_batch,
                                 description="where the dogs are, marked by a person: a JSON list with one "
                                             "[x0, y0, x1, y1] (the photo's pixels, EXIF orientation applied) or null "
                                             "for each image; a photo with a box is that one dog, no detector asked"),
    ) -> DogsResponse:
        """Each photo's dogs (the detector's boxes, or the box marked for it), each with the vector of its crop and
        its likeliest breeds."""
        if boxes is not None and not settings.detects:  # its vectors are whole photos': a crop would not be one
            raise BadBox("this embedder embeds whole photos (no detector): it takes no marked box")
        # Decoded large enough that a small dog's crop still has the pixels the model needs (the whole photo, when
        # no detector runs, as /v1/embed decodes it).
        model, files = await read_and_decode(
            images, lambda m: max(m.decode_side, settings.dog_decode_side) if settings.detects else m.decode_side,
            partial)
        readable = [not isinstance(d, ImageRejected) for d in files]
        marked = marked_boxes(boxes, [d if ok else None for d, ok in zip(files, readable, strict=True)])
        decoded = [d for d, ok in zip(files, readable, strict=True) if ok]
        found = await models.find(decoded, whole_if_none, crop_side=model.decode_side,
                                  whole_photo_dog=settings.whole_photo_dog, second_look=settings.second_look,
                                  marked=[m for m, ok in zip(marked, readable, strict=True) if ok])
        (photo_classes, dog_classes), embedded, hashes = await asyncio.gather(
            models.classify(decoded, found, every_photo=seems),
            _embed_crops(model, [d.crop for p in found for d in p.dogs], vectors),
            _hashes(decoded, phash))
        rows = iter(embedded)
        photos = []
        for photo, looks, classes, hashed in zip(found, photo_classes, dog_classes, hashes, strict=True):
            dogs = []
            for dog, cls in zip(photo.dogs, classes, strict=True):
                vector = next(rows)
                dogs.append({"box": list(dog.box), "score": dog.score, "marked": dog.marked,
                             "breed_guess": breeds(cls),
                             "vector": None if vector is None else
                             encode_f32(vector) if encoding == "base64" else vector.tolist()})
            photos.append({"width": photo.width, "height": photo.height, "dogs": dogs, "phash": hashed,
                           "seems": [] if looks is None else looks.seems()})
        answered = iter(photos)
        photos = [next(answered) if ok else {"error": d.reason, "code": d.code, "status": status_of(d)}
                  for d, ok in zip(files, readable, strict=True)]
        return DogsResponse(model=dogs_model(model), dim=model.dim, detector=detector_name, photos=photos)

    async def _hashes(decoded: list, wanted: bool) -> list[str | None]:
        if not wanted:
            return [None] * len(decoded)
        return await asyncio.to_thread(lambda: [to_hex(dhash(d.image)) for d in decoded])

    async def _embed_crops(model: EmbeddingModel, crops: list, wanted: bool) -> list:
        if not wanted:
            return [None] * len(crops)
        if not crops:
            return []
        tensors = await asyncio.to_thread(lambda: [model.preprocess(im) for im in crops])
        return list(await cache.embed(tensors))

    return app




def _jsonable(config: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
