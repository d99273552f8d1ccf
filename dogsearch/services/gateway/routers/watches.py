"""Watches: alerts when a dog like the one you look for is stored later. Make one for a stored dog (JSON with
dog_id) or from photos (multipart `image` files), read yours and their matches (the inbox), give one a new secret,
delete one. A watch is its creator's: another key gets a 404, as for jobs."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile  # what Request.form() gives (FastAPI's is a subclass)

from dogsearch.core.errors import InvalidInput, UnsupportedMedia
from dogsearch.gallery.reports import COUNTERPARTS, report_query
from dogsearch.services.errors import error_response
from dogsearch.services.gateway.deps import UUID_PATTERN, CallerDep, PartsDep, PhotosDep, WatchesDep
from dogsearch.services.gateway.schemas import (
    Delivery,
    Dog,
    Watch,
    WatchConditions,
    WatchCreated,
    WatchList,
    WatchMatch,
    WatchMatches,
    WatchRequest,
    WatchSecret,
)
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.watches.store import Watch as StoredWatch
from dogsearch.watches.watches import AlreadyWatching

_FORM_FIELDS = {"image", "webhook_url", "min_probability", "status", "near", "radius_km"}
_CREATE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": WatchRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "array", "items": {"type": "string", "format": "binary"},
                  "description": "photos of the dog (its largest dog each), instead of dog_id"},
        **{k: {"type": "string"} for k in ("webhook_url", "min_probability", "status", "near", "radius_km")}}}}}}}


class InvalidWatchRequest(InvalidInput):
    """A watch request whose fields are missing or malformed."""


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/watches", tags=["watches"])

    @api.post("", status_code=201, response_model=WatchCreated, openapi_extra=_CREATE_BODY,
              responses={409: {"description": "too many open watches for this key (too_many_watches; ended ones do "
                                              "not count), this dog watched by "
                                              "this key on the same conditions (already_watching, with that watch's "
                                              "`watch_id` and `watch_url`), or the vectors have no same-dog "
                                              "calibration (not_calibrated)"}})
    async def create_watch(request: Request, parts: PartsDep, caller: CallerDep, photos: PhotosDep) -> JSONResponse:
        """JSON {dog_id, webhook_url, min_probability, status, near, radius_km}, or multipart with `image` files
        (up to DOGSEARCH_GATEWAY_MAX_WATCH_PHOTOS) instead of dog_id. The answer's `secret` signs the deliveries
        and is shown only here."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        dog = None
        if kind == "application/json":
            raw = await request.body()
            body: WatchConditions = _checked(lambda: WatchRequest.model_validate_json(raw))
            dog = await parts.gallery.dog(body.dog_id)
            model, vectors = await parts.gallery.dog_vectors(body.dog_id)
        elif kind == "multipart/form-data":
            form = await request.form(max_files=settings.max_watch_photos, max_fields=len(_FORM_FIELDS) + 8)
            images = [v for k, v in form.multi_items() if k == "image"]
            if not images or not all(isinstance(v, UploadFile) for v in images):
                raise InvalidWatchRequest("image: one or more photo files (or JSON with dog_id instead)")
            fields: dict[str, Any] = {k: v for k, v in form.items() if k != "image"}
            if form.getlist("status"):
                fields["status"] = form.getlist("status")
            body = _checked(lambda: WatchConditions.model_validate(fields))
            model, vectors = await parts.gallery.photo_vectors(await photos.read_all(images))
        else:
            raise UnsupportedMedia("POST /v1/watches takes application/json (with dog_id) or multipart/form-data "
                                   "(with image files)")
        status = [body.status] if isinstance(body.status, str) else body.status or []
        reports = report_query(body.near, body.radius_km, status=status)
        statuses = reports.statuses
        own = dog.payload.get("status") if dog is not None else None
        if not statuses and isinstance(own, str) and own in COUNTERPARTS:
            statuses = COUNTERPARTS[own]  # a lost dog waits for found ones, as "more like this" offers
        near = (reports.near.lat, reports.near.lon) if reports.near else None
        try:
            watch, secret = await parts.watches.create(
                owner=caller.name, model=model, vectors=vectors, dog_id=dog.id if dog else None,
                min_probability=body.min_probability, statuses=statuses, near=near, radius_km=reports.radius_km,
                webhook_url=body.webhook_url)
        except AlreadyWatching as exc:  # the caller's own watch: named, so a client can read it or renew its secret
            return error_response(exc, watch_id=exc.watch_id, watch_url=f"/v1/watches/{exc.watch_id}")
        return JSONResponse(_out(watch, WatchCreated, secret=secret).model_dump(), status_code=201,
                            headers={"Location": f"/v1/watches/{watch.id}"})

    @api.get("", response_model=WatchList)
    async def list_watches(watches: WatchesDep, caller: CallerDep) -> WatchList:
        """The caller's own watches, oldest first; an admin's: every watch, as it may read each one."""
        return WatchList(items=[_out(w) for w in await watches.list(caller.name, everyone=caller.may("admin"))])

    @api.get("/{watch_id}", response_model=Watch)
    async def get_watch(watches: WatchesDep, caller: CallerDep,
                        watch_id: str = Path(..., pattern=UUID_PATTERN)) -> Watch:
        return _out(await watches.get(watch_id, caller.sees))

    @api.delete("/{watch_id}", status_code=204)
    async def delete_watch(watches: WatchesDep, caller: CallerDep,
                           watch_id: str = Path(..., pattern=UUID_PATTERN)) -> Response:
        """The watch, its matches and their pending deliveries."""
        await watches.delete(await watches.get(watch_id, caller.sees))
        return Response(status_code=204)

    @api.post("/{watch_id}/secret", response_model=WatchSecret)
    async def renew_secret(watches: WatchesDep, caller: CallerDep,
                           watch_id: str = Path(..., pattern=UUID_PATTERN)) -> WatchSecret:
        """A new secret for the watch's deliveries, shown only here, in place of the old one (lost, or leaked): every
        attempt from now on is signed with it, retries of earlier matches too (an ended watch's, and its end's); what
        was sent stays as it was signed. The watch keeps its id, conditions and inbox."""
        watch = await watches.get(watch_id, caller.sees)
        return WatchSecret(id=watch.id, secret=await watches.new_secret(watch))

    @api.get("/{watch_id}/matches", response_model=WatchMatches)
    async def watch_matches(parts: PartsDep, caller: CallerDep, watch_id: str = Path(..., pattern=UUID_PATTERN),
                            limit: int = Query(100, ge=1, le=1000)) -> WatchMatches:
        """The inbox: the dogs that matched, newest first, each with its probability and its delivery. A dog deleted
        since is no longer in it."""
        watch = await parts.watches.get(watch_id, caller.sees)
        found = await parts.watches.matches(watch, parts.gallery.ingest.stored_dog_ids, limit)
        return WatchMatches(items=[_match(m) for m in found])

    return api


def _checked(parse):
    try:
        return parse()
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidWatchRequest(reasons) from None


def _out(watch: StoredWatch, cls: type[Watch] = Watch, **extra: Any) -> Watch:
    return cls(**watch.public(), matches_url=f"/v1/watches/{watch.id}/matches", **extra)


def _match(m: dict[str, Any]) -> WatchMatch:
    base = f"/v1/dogs/{m['dog_id']}/image"
    return WatchMatch(dog=Dog(id=m["dog_id"], payload=m["dog_payload"], image_url=base,
                              thumbnail_url=f"{base}?size=thumbnail"),
                      probability=m["probability"], score=m["score"], matched_at=m["matched_at"],
                      delivery=Delivery(**m["delivery"]) if m["delivery"] else None)


