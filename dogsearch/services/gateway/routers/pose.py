"""Pose in the public API: a stored dog's pose and overlay, and any photo's pose (the pose service does the work)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response

from dogsearch.core.boxes import parse_box
from dogsearch.models.detect import Detection
from dogsearch.pose.render import render_png
from dogsearch.services.gateway.deps import UUID_PATTERN, PartsDep, PhotosDep
from dogsearch.services.gateway.settings import GatewaySettings

KEYPOINT_THRESHOLD = 0.3  # keypoints scoring below are drawn as not seen
PHOTO = "one of the dog's photos (its id); default: its cover"
NO_DOG = {422: {"description": "no dog found in the photo, as a search would say (code no_dog_found, with `seems`: "
                               "what it seems to show instead), a bad box, or bad input"}}


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(tags=["pose"])

    @api.get("/v1/dogs/{dog_id}/pose")
    async def dog_pose(parts: PartsDep, dog_id: str = Path(..., pattern=UUID_PATTERN),
                       photo: str | None = Query(None, pattern=UUID_PATTERN, description=PHOTO)) -> dict:
        """The dog's pose in one of its photos (a search result's `photo_id`: the photo that matched)."""
        return await parts.poses.of(await parts.gallery.dog_in(dog_id, photo))

    @api.get("/v1/dogs/{dog_id}/pose.png", response_class=Response, responses={200: {"content": {"image/png": {}}}})
    async def dog_pose_png(parts: PartsDep, dog_id: str = Path(..., pattern=UUID_PATTERN),
                           photo: str | None = Query(None, pattern=UUID_PATTERN, description=PHOTO)) -> Response:
        dog = await parts.gallery.dog_in(dog_id, photo)
        # Drawn in the photo's own pixels: decoded whole, not shrunk.
        image, pose = await asyncio.gather(
            asyncio.to_thread(parts.gallery.photos.decode_original, dog.photo_id, dog.format), parts.poses.of(dog))
        png = await asyncio.to_thread(render_png, image, pose["dogs"], KEYPOINT_THRESHOLD)
        # asked again each time: the cover may change (its photo removed), and a photo's box (marked again)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @api.post("/v1/pose", responses={200: {"content": {"image/png": {}}}, **NO_DOG})
    async def any_pose(parts: PartsDep, photos: PhotosDep, image: UploadFile = File(..., description="a photo"),
                       render: bool = Form(False), render_q: bool = Query(False, alias="render"),
                       box: str | None = Form(None, max_length=128,
                                              description='"x0,y0,x1,y1": pose the dog in this box alone (a search\'s '
                                                          '`dogs`, or one you mark), without the detector')):
        """The dogs of any photo with their poses (or, with `box`, that dog's). A photo in which a search would find no
        dog is refused as a search refuses it, rather than posed whole."""
        data = await photos.read(image)
        await asyncio.to_thread(parts.gallery.limits.probe, data)  # this API's limits; the pose service decodes it
        # a marked box says where the dog is, as in a search; else the dogs a search finds, sent with their detector's
        # scores: the pose service neither looks for them again nor refuses a close-up a search takes whole (no score)
        boxes = [parse_box(box)] if box is not None else [
            found if score is None else Detection(found, score) for found, score in await parts.gallery.dog_boxes(data)]
        if render or render_q:
            return Response(await parts.pose.render(data, boxes), media_type="image/png")
        return await parts.pose.pose(data, boxes)

    return api
