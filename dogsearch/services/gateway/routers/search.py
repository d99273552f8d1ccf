"""Search: the dogs most like a photo (optionally with their poses, or re-ranked by body proportions), and the dogs
most like a stored one."""
from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, File, Form, Path, Query, UploadFile

from dogsearch.gallery.fields import search_filter
from dogsearch.pose.rerank import rerank as rerank_by_pose
from dogsearch.services.gateway.deps import UUID_PATTERN, GalleryDep, PartsDep, dog_out, read_upload
from dogsearch.services.gateway.schemas import SearchResponse, SearchResult
from dogsearch.services.gateway.settings import GatewaySettings


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(tags=["search"])

    @api.post("/v1/search", response_model=SearchResponse)
    async def search_dogs(
        parts: PartsDep,
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
        data = await read_upload(image, parts.settings)
        if not pose and rerank == "none":
            matches = await parts.gallery.search(data, k, flt)
            return SearchResponse(results=[dog_out(m.dog, SearchResult, score=m.score) for m in matches],
                                  took_ms=_ms_since(start))
        # re-ranking looks at more candidates than it returns
        depth = min(parts.settings.max_k, k * parts.settings.pose_rerank_depth) if rerank == "pose" else k
        matches = await parts.gallery.search(data, depth, flt)
        query_pose, poses = await asyncio.gather(parts.pose.pose(data),
                                                 asyncio.gather(*(parts.poses.of(m.dog) for m in matches)))
        scored = [(m.score, m) for m in matches]
        ranked = (rerank_by_pose(query_pose, scored, poses, parts.settings.pose_rerank_weight) if rerank == "pose"
                  else [(s, m, p) for (s, m), p in zip(scored, poses, strict=True)])
        return SearchResponse(
            results=[dog_out(m.dog, SearchResult, score=m.score, pose=p if pose else None,
                             rerank_score=round(s, 6) if rerank == "pose" else None) for s, m, p in ranked[:k]],
            query_pose=query_pose if pose else None,
            took_ms=_ms_since(start),
        )

    @api.get("/v1/dogs/{dog_id}/similar", response_model=SearchResponse)
    async def similar(
        gallery: GalleryDep,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        k: int = Query(10, ge=1, le=settings.max_k),
        breed: str | None = None,
        name: str | None = None,
        filter: str | None = Query(None, description="JSON object of field -> value(s)"),
    ) -> SearchResponse:
        start = time.perf_counter()
        matches = await gallery.similar(dog_id, k, search_filter(breed, name, filter))
        return SearchResponse(results=[dog_out(m.dog, SearchResult, score=m.score) for m in matches],
                              took_ms=_ms_since(start))

    return api


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
