"""Pose in the public API: a stored dog's pose and overlay, and any photo's pose (the pose service does the work)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response

from dogsearch.core.boxes import parse_box
from dogsearch.pose.render import render_png
from dogsearch.services.gateway.deps import UUID_PATTERN, PartsDep, read_upload
from dogsearch.services.gateway.settings import GatewaySettings

KEYPOINT_THRESHOLD = 0.3  # keypoints scoring below are drawn as not seen


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(tags=["pose"])

    @api.get("/v1/dogs/{dog_id}/pose")
    async def dog_pose(parts: PartsDep, dog_id: str = Path(..., pattern=UUID_PATTERN)) -> dict:
        return await parts.poses.of(await parts.gallery.dog(dog_id))

    @api.get("/v1/dogs/{dog_id}/pose.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def dog_pose_png(parts: PartsDep, dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Response:
        dog = await parts.gallery.dog(dog_id)
        # Drawn in the photo's own pixels: decoded whole, not shrunk.
        image, pose = await asyncio.gather(asyncio.to_thread(parts.gallery.photos.decode_original, dog.id, dog.format),
                                           parts.poses.of(dog))
        png = await asyncio.to_thread(render_png, image, pose["dogs"], KEYPOINT_THRESHOLD)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @api.post("/v1/pose", responses={200: {"content": {"image/png": {}}}})
    async def any_pose(parts: PartsDep, image: UploadFile = File(..., description="a photo"),
                       render: bool = Form(False), render_q: bool = Query(False, alias="render"),
                       box: str | None = Form(None, max_length=128,
                                              description='"x0,y0,x1,y1": pose the dog in this box alone (a search\'s '
                                                          '`dogs`, or one you mark), without the detector')):
        """The dogs of any photo with their poses (or, with `box`, that dog's)."""
        given = None if box is None else parse_box(box)
        data = await read_upload(image, parts.settings)
        await asyncio.to_thread(parts.gallery.limits.probe, data)  # this API's limits; the pose service decodes it
        if render or render_q:
            return Response(await parts.pose.render(data, given), media_type="image/png")
        return await parts.pose.pose(data, given)

    return api
