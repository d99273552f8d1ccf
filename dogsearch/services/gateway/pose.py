"""Pose in the public API: a stored dog's pose and overlay, any photo's pose, pose on search results, and the
optional pose-aware re-ranking. The pose service does the work; answers for stored dogs are cached here."""
from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.responses import Response

from dogsearch.gallery.errors import PhotoMissing
from dogsearch.gallery.photos import PhotoStore
from dogsearch.pose.render import render_png
from dogsearch.services.pose.client import PoseClient

DOG_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
RERANK_PROPORTIONS = ("leg_to_body", "head_to_body")


class PoseCache:
    """Pose answers by dog id (ids are the photo's hash, so an answer never goes stale), newest kept."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._items: OrderedDict[str, dict] = OrderedDict()

    def get(self, key: str) -> dict | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: dict) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class GatewayPose:
    def __init__(self, client: PoseClient, photos: PhotoStore, get_point: Callable[[str], Awaitable[dict]],
                 *, cache_size: int = 4096, rerank_weight: float = 0.1) -> None:
        self.client, self.photos, self.get_point = client, photos, get_point
        self.cache = PoseCache(cache_size)
        self.rerank_weight = rerank_weight

    async def photo_bytes(self, dog_id: str, point: dict | None = None) -> bytes:
        point = point or await self.get_point(dog_id)
        path = self.photos.original(dog_id, point["payload"]["format"])
        if not path.exists():
            raise PhotoMissing(f"photo of dog {dog_id} is missing from the photo store")
        return path.read_bytes()

    async def for_dog(self, dog_id: str, point: dict | None = None) -> dict:
        cached = self.cache.get(dog_id)
        if cached is not None:
            return cached
        result = await self.client.pose(await self.photo_bytes(dog_id, point))
        self.cache.put(dog_id, result)
        return result

    def rerank(self, query_pose: dict, hits: list[dict], poses: list[dict]) -> list[tuple[float, dict, dict]]:
        """(adjusted score, hit, pose), best first: the cosine score minus a confidence-weighted proportion gap."""
        ranked = []
        for hit, pose in zip(hits, poses, strict=True):
            ranked.append((hit["score"] - self.rerank_weight * proportion_gap(query_pose, pose), hit, pose))
        ranked.sort(key=lambda item: -item[0])
        return ranked


def _main_dog(pose: dict) -> dict | None:
    dogs = pose.get("dogs") or []
    if not dogs:
        return None
    return max(dogs, key=lambda d: (d["box"][2] - d["box"][0]) * (d["box"][3] - d["box"][1]))


def proportion_gap(a: dict, b: dict) -> float:
    """Confidence-weighted mean |log ratio| of the main dogs' body proportions; 0 when nothing comparable."""
    da, db = _main_dog(a), _main_dog(b)
    if da is None or db is None:
        return 0.0
    total, weights = 0.0, 0.0
    for key in RERANK_PROPORTIONS:
        pa, pb = da["analysis"]["proportions"][key], db["analysis"]["proportions"][key]
        if pa["value"] and pb["value"] and pa["value"] > 0 and pb["value"] > 0:
            w = min(pa["confidence"], pb["confidence"])
            total += w * abs(math.log(pa["value"] / pb["value"]))
            weights += w
    return total / weights if weights > 0 else 0.0


def pose_router(gp: GatewayPose, read_upload: Callable[[UploadFile], Awaitable[bytes]],
                decode: Callable[[bytes], Awaitable[Any]], threshold: float = 0.3) -> APIRouter:
    router = APIRouter(tags=["pose"])

    @router.get("/v1/dogs/{dog_id}/pose")
    async def dog_pose(dog_id: str = Path(..., pattern=DOG_ID)) -> dict:
        return await gp.for_dog(dog_id)

    @router.get("/v1/dogs/{dog_id}/pose.png", response_class=Response,
                responses={200: {"content": {"image/png": {}}}})
    async def dog_pose_png(dog_id: str = Path(..., pattern=DOG_ID)) -> Response:
        point = await gp.get_point(dog_id)
        data = await gp.photo_bytes(dog_id, point)
        pose = await gp.for_dog(dog_id, point)
        decoded = await decode(data)
        png = await asyncio.to_thread(render_png, decoded.image, pose["dogs"], threshold)
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=86400"})

    @router.post("/v1/pose", responses={200: {"content": {"image/png": {}}}})
    async def any_pose(image: UploadFile = File(..., description="a photo"),
                       render: bool = Form(False), render_q: bool = Query(False, alias="render")):
        data = await read_upload(image)
        await decode(data)  # the same checks, and the same 4xx, as an upload
        if render or render_q:
            return Response(await gp.client.render(data), media_type="image/png")
        return await gp.client.pose(data)

    return router
