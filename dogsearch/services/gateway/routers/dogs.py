"""Dogs: add one, read one or a page, its photo, delete it."""
from __future__ import annotations

from fastapi import APIRouter, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from dogsearch.gallery.fields import check_fields_size, parse_json_object, search_filter, user_fields
from dogsearch.gallery.ingest import Upload
from dogsearch.gallery.photos import media_type
from dogsearch.services.gateway.deps import UUID_PATTERN, CallerDep, GalleryDep, SettingsDep, dog_out, read_upload
from dogsearch.services.gateway.routers.search import NO_DOG
from dogsearch.services.gateway.schemas import Dog, DogPage, DogUpdate
from dogsearch.services.gateway.settings import GatewaySettings

# Fields a multipart POST /v1/dogs may carry besides the photo; any other form field becomes a user field.
_KNOWN_FORM_FIELDS = {"image", "name", "breed", "payload", "dog"}


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/dogs", tags=["dogs"])

    @api.post("", status_code=201, response_model=Dog,
              responses={200: {"model": Dog, "description": "this dog of this photo is already stored: the existing "
                                                            "dog"}, **NO_DOG})
    async def add_dog(
        gallery: GalleryDep,
        caller: CallerDep,
        settings: SettingsDep,
        request: Request,
        response: Response,
        image: UploadFile = File(..., description="a photo of a dog (JPEG, PNG, WebP, GIF, BMP, TIFF)"),
        dog: int = Form(0, description="which dog of the photo to add (0: the largest; see POST /v1/detect)"),
        name: str | None = Form(None, max_length=200),
        breed: str | None = Form(None, max_length=200),
        payload: str | None = Form(None, description="your own fields as a JSON object"),
    ) -> Dog:
        fields = parse_json_object(payload, "payload")
        form = await request.form()
        fields.update({k: v for k, v in form.items() if k not in _KNOWN_FORM_FIELDS and isinstance(v, str)})
        fields.update({k: v for k, v in (("name", name), ("breed", breed)) if v})
        check_fields_size(fields)  # copied into every entry of the dog: not megabytes of them
        # The dog is the key's: only it (or an admin) may delete it.
        added = await gallery.ingest.add(Upload(await read_upload(image, settings), user_fields(fields),
                                                owner=caller.name), dog)
        if not added.created:
            response.status_code = 200
        return dog_out(added.dog, caller=caller)

    @api.get("", response_model=DogPage)
    async def list_dogs(
        gallery: GalleryDep,
        caller: CallerDep,
        limit: int = Query(20, ge=1, le=settings.max_page),
        cursor: str | None = Query(None, pattern=UUID_PATTERN, description="`next` of the previous page"),
        breed: str | None = None,
        name: str | None = None,
    ) -> DogPage:
        page = await gallery.page(limit, cursor, search_filter(breed, name, None))
        return DogPage(items=[dog_out(d, caller=caller) for d in page.dogs], next=page.next, total=page.total)

    @api.get("/{dog_id}", response_model=Dog)
    async def get_dog(gallery: GalleryDep, caller: CallerDep, dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Dog:
        return dog_out(await gallery.dog(dog_id), caller=caller)

    @api.patch("/{dog_id}", response_model=Dog)
    async def update_dog(gallery: GalleryDep, caller: CallerDep, update: DogUpdate,
                         dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Dog:
        """Sets user fields (name, breed, status, your own) on the dog: its owner's or an admin's to change."""
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        fields = update.model_dump()
        check_fields_size(fields)
        return dog_out(await gallery.update(dog_id, user_fields(fields)), caller=caller)

    @api.get("/{dog_id}/image", response_class=FileResponse)
    async def get_image(
        gallery: GalleryDep,
        dog_id: str = Path(..., pattern=UUID_PATTERN),
        size: str = Query("original", pattern="^(original|thumbnail)$"),
    ) -> FileResponse:
        path = await gallery.image(await gallery.dog(dog_id), size)
        return FileResponse(path, media_type=media_type(path), headers={"Cache-Control": "max-age=86400"})

    @api.delete("/{dog_id}", status_code=204)
    async def delete_dog(gallery: GalleryDep, caller: CallerDep,
                         dog_id: str = Path(..., pattern=UUID_PATTERN)) -> Response:
        if not caller.may("admin"):
            caller.check_may_change((await gallery.dog(dog_id)).owner, f"dog {dog_id}")
        await gallery.delete(dog_id)
        return Response(status_code=204)

    return api
