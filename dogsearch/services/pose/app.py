"""Pose service: a photo in; the dogs in it with AP-10K keypoints and a body analysis (or the overlay PNG) out."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import FastAPI, File, Form, Query, UploadFile
from fastapi.responses import Response

from dogsearch.core.boxes import clip_marked, parse_box
from dogsearch.models.pose import keypoints as K
from dogsearch.models.registry import create_detector, create_pose_model
from dogsearch.pose.pipeline import PosePipeline
from dogsearch.pose.render import render_png
from dogsearch.services.model_service import model_service
from dogsearch.services.pose.cache import PipelineCache
from dogsearch.services.pose.schemas import PoseInfo, PoseResponse
from dogsearch.services.pose.settings import PoseSettings

BOX = ('"x0,y0,x1,y1" in the photo\'s pixels (EXIF orientation applied): pose the dog in this box alone (one a '
       'search boxed, or a user marked; score 1), without the detector')


def pipeline_from_settings(settings: PoseSettings) -> PosePipeline:
    model = create_pose_model(settings.model, weights_dir=settings.weights_dir, checkpoint=settings.checkpoint,
                              mmpose_config=settings.mmpose_config, device=settings.device,
                              precision=settings.precision, flip_test=settings.flip_test, runtime=settings.runtime,
                              threads=settings.torch_threads, cache_dir=settings.cache_dir)
    detector = create_detector(settings.detector, threads=settings.torch_threads, max_dogs=settings.max_dogs,
                               runtime=settings.runtime, cache_dir=settings.cache_dir,
                               input_size=settings.detector_size, device=settings.device)
    return PosePipeline(model, detector, threshold=settings.keypoint_threshold, max_dogs=settings.max_dogs)


def create_app(settings: PoseSettings | None = None,
               pipeline_factory: Callable[[], PosePipeline] | None = None) -> FastAPI:
    settings = settings or PoseSettings()
    cache = PipelineCache(pipeline_factory or (lambda: pipeline_from_settings(settings)), **settings.batching())
    limits = settings.image_limits()
    # Lazy by default: it loads on the first request, and only the pose routes need it.
    app = model_service("pose", settings, cache, preload=settings.preload, lazy_is_ready=True,
                        max_request_bytes=settings.max_image_bytes + 1024 * 1024)

    @app.get("/v1/info", response_model=PoseInfo)
    async def info() -> PoseInfo:
        pipeline = await cache.aget()
        return PoseInfo(model=pipeline.model_id, detector=pipeline.detector.name, keypoints=list(K.AP10K_NAMES),
                        keypoint_threshold=settings.keypoint_threshold, device=settings.device,
                        runtime=pipeline.model.runtime)

    @app.post("/v1/pose", response_model=PoseResponse,
              responses={200: {"content": {"image/png": {}}, "description": "JSON, or the overlay with render=true"}})
    async def pose(image: UploadFile = File(..., description="a photo"),
                   render: bool = Query(False, description="answer with the photo and skeletons drawn, as PNG"),
                   box: str | None = Form(None, max_length=128, description=BOX)):
        given = None if box is None else parse_box(box)
        data = await image.read()
        decoded = await asyncio.to_thread(limits.decode, data)
        if given is not None:
            given = clip_marked(given, decoded.width, decoded.height)
        result = await cache.run(decoded.image, given)
        if render:
            png = await asyncio.to_thread(render_png, decoded.image, result["dogs"], settings.keypoint_threshold)
            return Response(png, media_type="image/png")
        return result

    return app

