"""Dogs: add one, read one or a page, its photos (add, remove, each one's image), delete it."""
from __future__ import annotations

import asyncio
import logging

import numpy as np
from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from dogsearch.core.boxes import parse_box
from dogsearch.core.errors import DogsearchError, InvalidInput
from dogsearch.gallery.errors import PhotoOfAnotherDog, PhotoStoredAlready
from dogsearch.gallery.fields import (
    MAX_LABEL_CHARS,
    InvalidFields,
    check_fields_size,
    parse_json_object,
    search_filter,
    user_fields,
)
from dogsearch.gallery.ingest import Upload
from dogsearch.gallery.reports import report_query
from dogsearch.services.errors import error_response
from dogsearch.services.gateway.deps import (
    UUID_PATTERN,
    CallerDep,
    GalleryDep,
    Parts,
    PartsDep,
    PhotosDep,
    dog_out,
    photos_out,
)
from dogsearch.services.gateway.images import image_answer
from dogsearch.services.gateway.routers.search import NO_DOG, RADIUS, SEEN_AFTER, SEEN_BEFORE, STATUS
from dogsearch.services.gateway.schemas import Dog, DogDetail, DogPage, DogUpdate, MarkedBox, PhotoAdded
from dogsearch.services.gateway.settings import GatewaySettings

log = logging.getLogger("dogsearch.gateway")

MARKED = ('"x0,y0,x1,y1": where the dog is, in the photo\'s pixels (EXIF orientation applied), marked by you where '
          'the detector missed it or boxed something else: that dog is stored, with its box (in place of `dog`)')

# Fields a multipart POST /v1/dogs may carry besides the photo; any other form field becomes a user field.
_KNOWN_FORM_FIELDS = {"image", "name", "breed", "payload", "dog", "box"}
NEAR_LIST = '"lat,lon" in degrees, with radius_km: only dogs seen within it'



class SeveralPhotos(InvalidInput):
    """More than one `image` where a dog, or a photo of one, is added: which one was meant is not guessed."""


def _one_image(form) -> None:
    if len(form.getlist("image")) > 1:
        raise SeveralPhotos("one `image` at a time: a dog is added from one photo, each other photo of it on its "
                            "own (POST /v1/dogs/{id}/photos)")


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/dogs", tags=["dogs"])

    @api.post("", status_code=201, response_model=Dog,
              responses={200: {"model": Dog, "description": "this dog of this photo is already stored: the stored "
                                                            "dog, with the fields sent that it lacked (the caller's "
                                                            "own dog, or any for an admin key)"},
                         409: {"description": "this dog of this photo is already stored, with other values of fields "
                                              "sent, or as another key's dog lacking some (code photo_stored_already, "
                                              "`dog_id`: that dog): nothing was stored or changed; change its fields "
                                              "with PATCH /v1/dogs/{dog_id}"},
                         **NO_DOG})
    async def add_dog(
        gallery: GalleryDep,
        caller: CallerDep,
        photos: PhotosDep,
        request: Request,
        response: Response,
        image: UploadFile = File(..., description="a photo of a dog (JPEG, PNG, WebP, GIF, BMP, TIFF)"),
        dog: int = Form(0, description="which dog of the photo to add (0: the largest; see POST /v1/detect)"),
        box: str | None = Form(None, max_length=128, description=MARKED),
        name: str | None = Form(None, max_length=MAX_LABEL_CHARS),
        breed: str | None = Form(None, max_length=MAX_LABEL_CHARS),
        payload: str | None = Form(None, description="your own fields as a JSON object"),
    ) -> Dog | Response:
        """A dog from one of its photos. Any other form field (or key of `payload`) is a field of the dog: a lost &
        found report's `status`, `location` ("lat,lon") and `seen_at` (ISO 8601), the last two also as `photo`: when
        and where the photo was taken, from its EXIF (422 when the photo does not say). With `seen_at=photo`,
        `time_zone` (IANA, "Europe/Berlin") is the zone of a camera time the photo gives without one; not stored.
        A photo stored already is not stored again: 200 with its dog, which gets the fields sent that it lacks when
        it is the caller's own (any dog, for an admin key, as PATCH); 409 where a field sent would be lost (another
        value stored, another key's dog)."""
        fields = parse_json_object(payload, "payload")
        form = await request.form()
        _one_image(form)
        fields.update({k: v for k, v in form.items() if k not in _KNOWN_FORM_FIELDS and isinstance(v, str)})
        fields.update({k: v for k, v in (("name", name), ("breed", breed)) if v})
        check_fields_size(fields)  # copied into every entry of the dog: not megabytes of them
        # The dog is the key's: only it (or an admin) may delete it.
        marked = None if box is None else parse_box(box)
        data = await photos.read(image)
        fields = await asyncio.to_thread(gallery.ingest.report_from_photo, user_fields(fields, from_photo=True), data)
        try:
            added = await gallery.ingest.add(Upload(data, fields, owner=caller.name, admin=caller.may("admin")), dog,
                                              box=marked)
        except PhotoStoredAlready as exc:  # the dog's id: a client opens it to change its fields
            return error_response(exc, dog_id=exc.dog_id)
        if not added.created:
            response.status_code = 200
        return dog_out(added.dog, caller=caller)

    @api.get("", response_model=DogPage)
    async def list_dogs(
        gallery: GalleryDep,
        caller: CallerDep,
        limit: int = Query(20, ge=1, le=settings.max_page),
        cursor: str | None = Query(None, pattern=r"^[A-Za-z0-9_-]{1,4096}$", description="`next` of the previous "
                                                                                         "page"),
        breed: str | None = None,
        name: str | None = None,
        filter: str | None = Query(None, description='JSON object of field -> value(s), as a search\'s: '
                                                     '{"status": ["lost", "found"]}; {"near_duplicate_of": ID}: '
                                                     'the dogs whose photo looks like a copy of dog ID\'s'),
        # a search's report fields: a shelter lists the dogs found near it this week as it searches them
        near: str | None = Query(None, max_length=64, description=NEAR_LIST),
        radius_km: float | None = Query(None, description=RADIUS),
        seen_after: str | None = Query(None, max_length=64, description=SEEN_AFTER),
        seen_before: str | None = Query(None, max_length=64, description=SEEN_BEFORE),
        status: list[str] | None = Query(None, description=STATUS),
    ) -> DogPage:
        reports = report_query(near, radius_km, seen_after, seen_before, status or ())
        page = await gallery.page(limit, cursor, reports.merged(search_filter(breed, name, filter)))
        return DogPage(items=[dog_out(d, caller=caller) for d in await gallery.shown(page.dogs)], next=page.next,
                       total=page.total)

    @api.get("/{dog_id}", response_model=DogDetail)
    async def get_dog(gallery: GalleryDep, caller: CallerDep,
                      dog_id: str = Path(..., pattern=UUID_PATTERN)) -> DogDetail:
        """The dog and all of its photos."""
        return await _detail(gallery, caller, dog_id)

    @api.post("/{dog_id}/photos", status_code=201, response_model=PhotoAdded,
              responses={200: {"model": PhotoAdded, "description": "this dog of this photo is a photo of this dog "
                                                                   "already: nothing changed"},
                         409: {"description": "that dog of the photo is another dog (code photo_of_another_dog, "
                                              "`dog_id`: that dog, where one is stored as it)"},
                         **NO_DOG})
    async def add_photo(
        parts: PartsDep,
        caller: CallerDep,
        photos: PhotosDep,
        request: Request,
        response: Response,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        image: UploadFile = File(..., description="another photo of the dog"),
        dog: int = Form(0, description="which dog of the photo it is (0: the largest; see POST /v1/detect)"),
        box: str | None = Form(None, max_length=128, description=MARKED),
    ) -> PhotoAdded | Response:
        """Another photo of a dog: its owner's key or an admin's. The photo takes the dog's fields (change them with
        PATCH, on every photo at once); a search finds the dog by whichever of its photos is nearest. The answer says
        how likely the photo shows this dog (`same_dog`, `verdict`): another dog's photo added by mistake reads
        "unlikely"."""
        gallery = parts.gallery
        form = await request.form()
        _one_image(form)
        extra = sorted(k for k in form if k not in ("image", "dog", "box"))
        if extra:
            raise InvalidFields(f"a photo takes its dog's fields; set them with PATCH /v1/dogs/{dog_id}, not "
                                f"{', '.join(extra)[:200]}")
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        marked = None if box is None else parse_box(box)
        try:
            added = await gallery.add_photo(dog_id, Upload(await photos.read(image), {}), dog, marked)
        except PhotoOfAnotherDog as exc:  # the other dog's id: a client links to it
            return error_response(exc, **({"dog_id": exc.dog_id} if exc.dog_id else {}))
        if not added.created:
            response.status_code = 200
        detail = await _detail(gallery, caller, dog_id)
        same = await _same_dog(parts, dog_id, added.dog.entry_id)
        return PhotoAdded(**detail.model_dump(), photo_id=added.dog.photo_id, same_dog=same,
                          verdict=None if same is None else parts.same_dog.verdict(same))

    @api.put("/{dog_id}/photos/{photo_id}/box", response_model=DogDetail,
             responses={422: {"description": "a box that is not one, or holds too little of the photo (code bad_box)"}})
    async def mark_photo(gallery: GalleryDep, caller: CallerDep, marked: MarkedBox,
                         dog_id: str = Path(..., pattern=UUID_PATTERN),
                         photo_id: str = Path(..., pattern=UUID_PATTERN)) -> DogDetail:
        """Where the dog is in one of its photos, marked by its owner or an admin (the detector boxed another dog,
        or part of this one): the photo is embedded again from that box, which it keeps (`marked`)."""
        box = parse_box(marked.box)
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        await gallery.mark_photo(dog_id, photo_id, box)
        return await _detail(gallery, caller, dog_id)

    @api.delete("/{dog_id}/photos/{photo_id}", status_code=204,
                responses={409: {"description": "the dog's only photo (code last_photo): delete the dog instead"}})
    async def delete_photo(gallery: GalleryDep, caller: CallerDep, dog_id: str = Path(..., pattern=UUID_PATTERN),
                           photo_id: str = Path(..., pattern=UUID_PATTERN)) -> Response:
        """Removes one photo of a dog (its owner's key or an admin's); removing the cover makes another photo the
        cover."""
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        await gallery.delete_photo(dog_id, photo_id)
        return Response(status_code=204)

    @api.get("/{dog_id}/photos/{photo_id}/image", response_class=FileResponse)
    @api.head("/{dog_id}/photos/{photo_id}/image", include_in_schema=False)
    async def get_photo_image(
        request: Request,
        gallery: GalleryDep,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        photo_id: str = Path(..., pattern=UUID_PATTERN),
        size: str = Query("original", pattern="^(original|thumbnail)$"),
    ) -> Response:
        path = await gallery.image(await gallery.dog(dog_id), size, photo=photo_id)
        # a photo's id is its bytes' hash: this URL shows the same photo for as long as it answers
        return await image_answer(request, path)

    @api.patch("/{dog_id}", response_model=Dog)
    async def update_dog(gallery: GalleryDep, caller: CallerDep, update: DogUpdate,
                         dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Dog:
        """Sets user fields (name, breed, status, your own) on the dog, null removing one: its owner's or an
        admin's to change."""
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        fields = update.model_dump()
        check_fields_size(fields)
        return dog_out(await gallery.update(dog_id, user_fields(fields, removing=True)), caller=caller)

    @api.get("/{dog_id}/image", response_class=FileResponse)
    @api.head("/{dog_id}/image", include_in_schema=False)
    async def get_image(
        request: Request,
        gallery: GalleryDep,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        size: str = Query("original", pattern="^(original|thumbnail)$"),
    ) -> Response:
        path = await gallery.image(await gallery.dog(dog_id), size)
        # the cover may change (its photo removed) to an older photo: told apart by its ETag alone
        return await image_answer(request, path, dated=False)

    @api.delete("/{dog_id}", status_code=204)
    async def delete_dog(gallery: GalleryDep, caller: CallerDep,
                         dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Response:
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        await gallery.delete(dog_id)
        return Response(status_code=204)

    return api


async def _same_dog(parts: Parts, dog_id: str, entry: str) -> float | None:
    """The calibrated probability that a dog's photo (`entry`) shows the same dog as its closest other photo; None
    where it cannot be told. The photo is stored by now: nothing here fails the add (a retry would only find it
    stored, and say nothing of it)."""
    model = parts.gallery.space.model
    try:
        score = await parts.gallery.likeness(dog_id, entry)
        if score is None or model is None:
            return None
        found = await parts.same_dog.probabilities(model, np.asarray([score]))
    except DogsearchError:
        log.warning("no same-dog verdict for a photo added to dog %s", dog_id, exc_info=True)
        return None
    return None if found is None else round(float(found[0]), 4)


async def _detail(gallery, caller, dog_id: str) -> DogDetail:
    [dog] = await gallery.shown([await gallery.dog(dog_id)])
    return dog_out(dog, DogDetail, caller=caller, photos=photos_out(dog.id, await gallery.photos_of(dog_id)))
