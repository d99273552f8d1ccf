"""Search: the dogs most like a photo (optionally with their poses, or re-ranked by body proportions), and the dogs
most like a stored one."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from fastapi import APIRouter, File, Form, Path, Query, Response, UploadFile

from dogsearch.core.boxes import parse_box
from dogsearch.core.errors import InvalidInput, TimedOut, TooLarge, Unavailable
from dogsearch.gallery.contracts import PhotoDogs
from dogsearch.gallery.fields import FROM_PHOTO, search_filter
from dogsearch.gallery.gallery import Search
from dogsearch.gallery.records import Match
from dogsearch.gallery.reports import (
    COUNTERPARTS,
    Place,
    ReportQuery,
    distance_from,
    near_photo,
    report_query,
    stored_place,
)
from dogsearch.pose.rerank import rerank as rerank_by_pose
from dogsearch.services.gateway.deps import (
    UUID_PATTERN,
    GalleryDep,
    Parts,
    PartsDep,
    PhotosDep,
    dog_out,
)
from dogsearch.services.gateway.samedog import JUDGED, Judged
from dogsearch.services.gateway.schemas import (
    Detected,
    FoundDog,
    PhotoSearchResponse,
    SearchResponse,
    SearchResult,
    Taken,
)
from dogsearch.services.gateway.settings import GatewaySettings

log = logging.getLogger("dogsearch.gateway")

NO_DOG = {422: {"description": "no dog found in the photo (code no_dog_found, with `seems`: what it seems to show "
                               "instead, and of several photos `photo`: which, 0 first), `dog` beyond the dogs it "
                               "shows (code no_such_dog), or bad input"}}


# The report fields of a search (gallery/reports.py; docs/lost-and-found.md).
NEAR = '"lat,lon" in degrees: each result gets its distance_km from there; with radius_km, only dogs within it'
NEAR_PHOTO = NEAR + '; "photo": where the (first) photo was taken, from its EXIF GPS position (422 if it does not say)'
RADIUS = "km around near (above 0, at most 20000): dogs seen farther away, or nowhere, are left out"
SEEN_AFTER = "ISO 8601 date or date and time (UTC without a zone): dogs seen then or later"
SEEN_BEFORE = "ISO 8601: dogs seen then or earlier (a bare date: to its end)"
STATUS = "any of lost, found, sighted, home, shelter (repeat the field, or separate them with commas)"
FOR_STATUS = ("the status of the dog you have: search among the reports that answer it (found, sighted, shelter -> "
              "lost; lost -> found, sighted, shelter); home answers nothing")


BOX = ('"x0,y0,x1,y1": where the dog is, in the photo\'s pixels (EXIF orientation applied; `width` x `height` of '
       'POST /v1/detect), marked by you where the detector missed it or boxed something else: that dog alone, the '
       'detector not asked (`dogs` is then that dog, `marked`; a search: with one photo)')


class TooManyPhotos(TooLarge):
    """More query photos than MAX_QUERY_PHOTOS."""


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(tags=["search"])

    @api.post("/v1/detect", response_model=Detected)
    async def detect(gallery: GalleryDep, photos: PhotosDep,
                     image: UploadFile = File(..., description="a photo"),
                     box: str | None = Form(None, max_length=128, description=BOX)) -> Detected:
        """The dogs a search or an add would find in the photo (pick one with their `dog` field), each with breed
        suggestions, and what the photo seems to show; with `box`, the dog you marked (its breed suggestions)."""
        marked = None if box is None else parse_box(box)
        photo = await gallery.detect(await photos.read(image), marked)
        return Detected(width=photo.width, height=photo.height, dogs=found_dogs(photo), seems=list(photo.seems))

    @api.post("/v1/preview", response_class=Response,
              responses={200: {"content": {"image/jpeg": {}}, "description": "the photo as a JPEG"}})
    async def preview(gallery: GalleryDep, photos: PhotosDep,
                      image: UploadFile = File(..., description="a photo")) -> Response:
        """The photo as a JPEG that any browser shows, for a client to show what it picked (a phone's HEIC shows
        only in Safari): upright, its longer side at most 1024 px, without the photo's metadata. Nothing is
        stored."""
        jpeg = await gallery.preview(await photos.read(image))
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @api.post("/v1/taken", response_model=Taken)
    async def taken(gallery: GalleryDep, photos: PhotosDep,
                    image: UploadFile = File(..., description="a photo")) -> Taken:
        """When and where the photo says it was taken (its EXIF: the camera's time with its zone or the GPS time,
        the GPS position), as a lost & found report's `seen_at` and `location`, for a client to offer them before it
        adds the photo (or add it with `seen_at=photo`, `location=photo`). Only its header is read; nothing is
        stored."""
        report = await gallery.taken(await photos.read(image))
        return Taken(seen_at=report.seen_at, location=report.location, unknown=report.unknown,
                     local_time=report.local_time and report.local_time.isoformat())

    @api.post("/v1/search", response_model=PhotoSearchResponse, responses=NO_DOG)
    async def search_dogs(
        parts: PartsDep,
        uploads: PhotosDep,
        image: list[UploadFile] = File(..., description="a photo of a dog; repeat the field for several photos of "
                                                        "the same dog (at most MAX_QUERY_PHOTOS), combined by "
                                                        "QUERY_COMBINE"),
        dog: int = Form(0, description="which dog of each photo to search for (0: the largest; see `dogs`)"),
        box: str | None = Form(None, max_length=128, description=BOX),
        k: int = Form(10, ge=1, le=settings.max_k),
        breed: str | None = Form(None),
        name: str | None = Form(None),
        filter: str | None = Form(None, description='JSON object, e.g. {"color": ["brown", "black"]}'),
        pose: bool = Form(False, description="add each result's pose and the query's (query_pose)"),
        rerank: Literal["none", "pose"] = Form("none", description="'pose': re-order by body proportions too"),
        near: str | None = Form(None, max_length=64, description=NEAR_PHOTO),
        radius_km: float | None = Form(None, description=RADIUS),
        seen_after: str | None = Form(None, max_length=64, description=SEEN_AFTER),
        seen_before: str | None = Form(None, max_length=64, description=SEEN_BEFORE),
        status: list[str] | None = Form(None, description=STATUS),
        for_status: str | None = Form(None, max_length=16, description=FOR_STATUS),
    ) -> PhotoSearchResponse:
        start = time.perf_counter()
        if len(image) > parts.settings.max_query_photos:
            raise TooManyPhotos(f"{len(image)} photos: a search combines at most {parts.settings.max_query_photos} "
                                "photos of one dog")
        marked = None if box is None else parse_box(box)
        photos = await uploads.read_all(image)
        if near == FROM_PHOTO:
            near = near_photo(await parts.gallery.taken(photos[0]))
        reports = report_query(near, radius_km, seen_after, seen_before, status or (), for_status)
        flt = reports.merged(search_filter(breed, name, filter))
        data, rule = photos[0], parts.settings.query_combine
        if not pose and rerank == "none":
            found = await parts.gallery.search(photos, max(k, JUDGED), flt, dog, rule, marked)
            judged = await _judge(parts, found.matches, k)
            return _answer(found, [result(m, judged, i, reports.near) for i, m in enumerate(found.matches[:k])],
                           judged, start, reports=reports)
        # re-ranking looks at more candidates than it returns; each candidate posed is a pose call on its whole
        # stored photo, so only the best few are (a search of k=100 was 100 of them)
        depth = min(k * parts.settings.pose_rerank_depth if rerank == "pose" else k, parts.settings.max_k,
                    parts.settings.pose_search_max)
        found = await parts.gallery.search(photos, max(k, depth, JUDGED), flt, dog, rule, marked)
        matches = found.matches[:depth]
        # the searched dog's box (the whole photo for a dog taken whole): its pose, not the photo's others', and
        # none the pose service would refuse for want of a dog it finds itself
        box = found.photo.dogs[found.dog].box
        scored = [(m.score, m) for m in matches]
        try:
            query_pose, poses = await asyncio.gather(parts.pose.pose(data, [box]),
                                                     asyncio.gather(*(parts.poses.of(m.dog) for m in matches)))
        except (Unavailable, TimedOut, InvalidInput) as exc:
            # the pose service down, slow or refusing a photo (over its own limits): the search itself still answers
            log.warning("search without poses: %s", exc.reason)
            judged = await _judge(parts, found.matches, k)
            return _answer(found, [result(m, judged, i, reports.near) for i, m in enumerate(found.matches[:k])],
                           judged, start, reports=reports, pose_error=exc.reason)
        ranked = (rerank_by_pose(query_pose, scored, poses, parts.settings.pose_rerank_weight) if rerank == "pose"
                  else [(s, m, p) for (s, m), p in zip(scored, poses, strict=True)])
        # past the posed ones: in their cosine order, without a pose
        ranked = (ranked + [(m.score, m, None) for m in found.matches[len(matches):k]])[:k]
        shown = [m for _, m, _ in ranked]
        ids = {m.dog.id for m in shown}
        judged = await _judge(parts, shown + [m for m in found.matches if m.dog.id not in ids], len(shown))
        return _answer(found, [result(m, judged, i, reports.near, pose=p if pose else None,
                                      rerank_score=round(s, 6) if rerank == "pose" and p is not None else None)
                               for i, (s, m, p) in enumerate(ranked)], judged, start, query_pose if pose else None,
                       reports)

    @api.get("/v1/dogs/{dog_id}/similar", response_model=SearchResponse)
    async def similar(
        parts: PartsDep,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        k: int = Query(10, ge=1, le=settings.max_k),
        breed: str | None = None,
        name: str | None = None,
        filter: str | None = Query(None, description="JSON object of field -> value(s)"),
        near: str | None = Query(None, max_length=64, description=NEAR + "; default: the dog's own location"),
        radius_km: float | None = Query(None, description=RADIUS + " (around the dog's location without near)"),
        seen_after: str | None = Query(None, max_length=64, description=SEEN_AFTER),
        seen_before: str | None = Query(None, max_length=64, description=SEEN_BEFORE),
        status: list[str] | None = Query(None, description=STATUS),
        counterparts: bool = Query(True, description="for a dog with a report (lost, found, sighted, shelter) and "
                                                     "no `status` given: only the reports that answer it"),
    ) -> SearchResponse:
        start = time.perf_counter()
        dog = await parts.gallery.dog(dog_id)
        own = dog.payload.get("status")
        answered = own if counterparts and not status and isinstance(own, str) and own in COUNTERPARTS else None
        reports = report_query(near, radius_km, seen_after, seen_before, status or (), answered,
                               centre=stored_place(dog.payload))
        await _know_model(parts)
        matches = await parts.gallery.similar(dog_id, max(k, JUDGED),
                                              reports.merged(search_filter(breed, name, filter)),
                                              parts.settings.query_combine, parts.settings.max_query_photos)
        judged = await _judge(parts, matches, k)
        return SearchResponse(results=[result(m, judged, i, reports.near) for i, m in enumerate(matches[:k])],
                              best_verdict=judged.best_verdict, message=judged.message, took_ms=_ms_since(start),
                              verdicts_unchecked=judged.unchecked, statuses=list(reports.statuses) or None)

    return api


def found_dogs(photo: PhotoDogs) -> list[FoundDog]:
    return [FoundDog(index=i, box=list(d.box), score=d.score, marked=d.marked, breed_guess=list(d.breed_guess))
            for i, d in enumerate(photo.dogs)]


async def _judge(parts: Parts, matches: list[Match], shown: int) -> Judged:
    """Same dog? The first `shown` matches, by the cosine (not a re-ranked score; of the part the calibration
    reads, where it reads one) and how far each leads the other matches that are not the same dog, with the
    calibration of the collection's vectors."""
    return await parts.same_dog.judge(parts.gallery.space.model, matches, shown, parts.gallery.alike)


async def _know_model(parts: Parts) -> None:
    """A "more like this" first after a start: the embedder says which vectors these are (so the ranking knows which
    part verdicts read). It needs no embedder otherwise: without one, it answers without same_dog rather than fail."""
    if parts.gallery.space.model is None:
        try:
            await parts.gallery.space.ensure()
        except (Unavailable, TimedOut):
            pass


def result(match: Match, judged: Judged, index: int, near: Place | None = None, **extra) -> SearchResult:
    payload = match.dog.payload
    return dog_out(match.dog, SearchResult, photo_id=match.dog.photo_id,
                   score=min(1.0, match.score), box=payload.get("box"),  # a float32 cosine may pass 1 by an ulp
                   same_dog=judged.probabilities[index], verdict=judged.verdicts[index],
                   distance_km=distance_from(near, payload), seen_at=payload.get("seen_at"), **extra)


def _answer(found: Search, results: list[SearchResult], judged: Judged, start: float,
            query_pose: dict | None = None, reports: ReportQuery | None = None,
            pose_error: str | None = None) -> PhotoSearchResponse:
    photo = found.photo
    return PhotoSearchResponse(results=results, query_pose=query_pose, took_ms=_ms_since(start), pose_error=pose_error,
                               query_photos=len(found.photos) or 1,
                               best_verdict=judged.best_verdict, message=judged.message,
                               verdicts_unchecked=judged.unchecked,
                               dogs=found_dogs(photo), dog=found.dog, width=photo.width, height=photo.height,
                               breed_guess=list(photo.dogs[found.dog].breed_guess),
                               statuses=list(reports.statuses) or None if reports else None)


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 2)
