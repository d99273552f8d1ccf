"""Pose service: a photo in; the dogs in it with AP-10K keypoints and a body analysis (or the overlay PNG) out."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import StringConstraints

from dogsearch.core.boxes import clip_marked
from dogsearch.core.errors import InvalidInput
from dogsearch.gallery.errors import NoDogFound
from dogsearch.models.detect import Detection
from dogsearch.models.pose import keypoints as K
from dogsearch.models.registry import create_detector, create_pose_model
from dogsearch.pose.pipeline import PosePipeline
from dogsearch.pose.render import render_png
from dogsearch.services.errors import error_response
from dogsearch.services.model_service import model_service
from dogsearch.services.pose.cache import PipelineCache
from dogsearch.services.pose.schemas import PoseInfo, PoseResponse, parse_box_field
from dogsearch.services.pose.settings import PoseSettings

BOX = ('"x0,y0,x1,y1" in the photo\'s pixels (EXIF orientation applied): pose the dog in this box (one a user '
       'marked: score 1, given; or with a fifth number, "x0,y0,x1,y1,score", one a detector found, with its score), '
       'without the detector; repeat the field for each dog of the photo (the first max_dogs)')


def pipeline_from_settings(settings: PoseSettings) -> PosePipeline:
    model = create_pose_model(settings.model, weights_dir=settings.weights_dir, checkpoint=settings.checkpoint,
                              mmpose_config=settings.mmpose_config, device=settings.device,
                              precision=settings.precision, flip_test=settings.flip_test, runtime=settings.runtime,
                              threads=settings.torch_threads, cache_dir=settings.cache_dir)
    detector = create_detector(settings.detector, threads=settings.torch_threads, max_dogs=settings.max_dogs,
                               runtime=settings.runtime, cache_dir=settings.cache_dir,
                               input_size=settings.detector_size, device=settings.device)
    return PosePipeline(model, detector, threshold=settings.keypoint_threshold, max_dogs=settings.max_dogs,
                        require_dog=settings.require_dog, whole_photo_dog=settings.whole_photo_dog)


def create_app(settings: PoseSettings | None = None,
               pipeline_factory: Callable[[], PosePipeline] | None = None) -> FastAPI:
    settings = settings or PoseSettings()
    cache = PipelineCache(pipeline_factory or (lambda: pipeline_from_settings(settings)), **settings.batching())
    limits = settings.image_limits()
    # Lazy by default: it loads on the first request, and only the pose routes need it.
    app = model_service("pose", settings, cache, preload=settings.preload, lazy_is_ready=True,
                        max_request_bytes=settings.max_image_bytes + 1024 * 1024)

    @app.exception_handler(NoDogFound)
    async def no_dog(_: Request, exc: NoDogFound) -> JSONResponse:  # what the photo seems to show, as the gateway
        return error_response(exc, seems=exc.seems)

    @app.get("/v1/info", response_model=PoseInfo)
    async def info() -> PoseInfo:
        pipeline = await cache.aget()
        return PoseInfo(model=pipeline.model_id, detector=pipeline.detector.name, keypoints=list(K.AP10K_NAMES),
                        keypoint_threshold=settings.keypoint_threshold, device=settings.device,
                        runtime=pipeline.model.runtime)

    @app.post("/v1/pose", response_model=PoseResponse,
              responses={200: {"content": {"image/png": {}}, "description": "JSON, or the overlay with render=true"},
                         422: {"description": "no dog found in the photo sent without a box (code no_dog_found, "
                                              "with `seems`: what it seems to show instead; require_dog), a bad "
                                              "box, or bad input"}})
    async def pose(image: UploadFile = File(..., description="a photo"),
                   render: bool = Query(False, description="answer with the photo and skeletons drawn, as PNG"),
                   box: list[Annotated[str, StringConstraints(max_length=128)]] | None = Form(None, description=BOX)):
        if box and len(box) > settings.max_dogs:  # each box is posed: as many as a photo's answer may hold
            raise InvalidInput(f"at most {settings.max_dogs} boxes a photo (max_dogs), got {len(box)}")
        fields = [parse_box_field(b) for b in box or ()]
        data = await image.read()
        decoded = await asyncio.to_thread(limits.decode, data)
        given = [(clip_marked(b, decoded.width, decoded.height), score) for b, score in fields]
        # a box with a score is its detector's detection; one without, the caller's word (given, score 1)
        result = await cache.run(decoded.image, [b if score is None else Detection(b, score) for b, score in given])
        if not result["dogs"]:
            raise NoDogFound(seems=result["seems"])
        if render:
            png = await asyncio.to_thread(render_png, decoded.image, result["dogs"], settings.keypoint_threshold)
            return Response(png, media_type="image/png")
        return result

    return app

