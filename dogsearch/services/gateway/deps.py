"""What the gateway's routes depend on: the parts built once per app by create_app, looked up per request."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request, UploadFile

from dogsearch.core.access import NOBODY, Caller
from dogsearch.core.errors import Unavailable
from dogsearch.core.images import DecodeBudget, DecodersBusy, ImageLimits, check_size
from dogsearch.gallery.gallery import Gallery
from dogsearch.gallery.locks import PhotoLocks, SharedLocks
from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.records import Dog, Photo
from dogsearch.jobs.service import Jobs
from dogsearch.services.embedder.client import EmbedderClient
from dogsearch.services.gateway.poses import StoredPoses
from dogsearch.services.gateway.samedog import SameDog
from dogsearch.services.gateway.schemas import Dog as DogOut
from dogsearch.services.gateway.schemas import Photo as PhotoOut
from dogsearch.services.gateway.security import CALLER
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.pose.client import PoseClient
from dogsearch.services.search.client import SearchClient
from dogsearch.watches.store import WatchStore
from dogsearch.watches.watches import Watches

# Dogs and jobs are named by UUIDs (a dog's is made from its photo's hash): a path parameter of any other form is a 422.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# How long a request waits for its photos' share of UPLOAD_MEMORY_BYTES before it is answered 503, and how often it
# looks: the budget's own wait blocks a thread, and threads are what the requests in flight need to finish.
UPLOAD_WAIT_S = 10.0
UPLOAD_POLL_S = 0.05


def build_gallery(settings: GatewaySettings, embedder: EmbedderClient, search: SearchClient,
                  same_dog: SameDog | None = None, broker_url: str | None = None) -> Gallery:
    """Configured by DOGSEARCH_GATEWAY_*: the photo directory, the thumbnail size and the limits. The gateway and
    the Celery workers both build theirs here, so they store and check photos alike. `same_dog`: which part of the
    vectors its verdicts read (the gateway's searches; the workers only store). `broker_url`: the jobs' Redis, where
    the gateway replicas and the workers take turns on a photo and a dog (gallery/locks.py)."""
    budget = DecodeBudget(settings.decode_memory_bytes)  # bulk jobs' decodes and thumbnails share it
    gallery = Gallery(embedder, search, PhotoStore(settings.data_dir, settings.thumbnail_px, decode_budget=budget),
                      ImageLimits(settings.max_upload_bytes, settings.max_image_pixels, settings.max_decode_bytes,
                                  budget), require_dog=settings.require_dog, expansion=settings.expansion,
                      judged_by=same_dog)
    if broker_url:
        shared = SharedLocks(broker_url)
        gallery.ingest.locks, gallery.ingest.dog_locks = PhotoLocks(shared), PhotoLocks(shared, kind="dog")
    return gallery


async def close_locks(gallery: Gallery) -> None:
    """Closes the Redis client of the locks build_gallery gave `gallery` where a broker is set (at the shutdown of
    whoever built it)."""
    if gallery.ingest.locks.shared is not None:  # the dogs' locks share it
        await gallery.ingest.locks.shared.aclose()


def build_watches(settings: GatewaySettings, index: SearchClient, same_dog: SameDog, *, make: bool) -> Watches:
    """The watches on the settings' SQLite file: the gateway's (`make`: it alone makes the file) and each Celery
    worker thread's and `dogsearch check`'s (the store the gateway made, else StoreMissing)."""
    return Watches(WatchStore(settings.watches_file, make=make), index, same_dog, rule=settings.query_combine,
                   max_per_owner=settings.max_watches_per_key, allow_private=settings.webhook_allow_private)


def connect_gallery(settings: GatewaySettings, broker_url: str | None = None) -> Gallery:
    """A gallery on the embedder and search services at the settings' URLs (a Celery worker's)."""
    timeout = settings.upstream_timeout_s
    token = settings.internal_secret
    return build_gallery(settings, EmbedderClient(settings.embedder_url, timeout=timeout, token=token),
                         SearchClient(settings.search_url, timeout=timeout, token=token), broker_url=broker_url)


@dataclass
class Parts:
    settings: GatewaySettings
    gallery: Gallery
    jobs: Jobs
    pose: PoseClient
    poses: StoredPoses
    same_dog: SameDog
    watches: Watches
    # what the photos of the requests in flight hold in memory, the decodes' class with no blocking wait (Photos)
    uploads: DecodeBudget = field(init=False)

    def __post_init__(self) -> None:
        self.uploads = DecodeBudget(self.settings.upload_memory_bytes, wait_s=0)


def _parts(request: Request) -> Parts:
    return request.app.state.parts


def _gallery(request: Request) -> Gallery:
    return request.app.state.parts.gallery


def _settings(request: Request) -> GatewaySettings:
    return request.app.state.parts.settings


def _jobs(request: Request) -> Jobs:
    return request.app.state.parts.jobs


def _watches(request: Request) -> Watches:
    return request.app.state.parts.watches


def _caller(request: Request) -> Caller:
    # Resolved by security.Access before the route runs; without it, nobody (closed rather than open).
    return request.scope.get(CALLER, NOBODY)


PartsDep = Annotated[Parts, Depends(_parts)]
GalleryDep = Annotated[Gallery, Depends(_gallery)]
SettingsDep = Annotated[GatewaySettings, Depends(_settings)]
JobsDep = Annotated[Jobs, Depends(_jobs)]
CallerDep = Annotated[Caller, Depends(_caller)]
WatchesDep = Annotated[Watches, Depends(_watches)]


class UploadsBusy(Unavailable):
    """The photos of the requests in flight hold the memory this request's would need for longer than it may
    wait: retry soon."""


class Photos:
    """A request's uploaded photos read into memory, their size first taken from the gateway's budget of photo bytes
    in flight (UPLOAD_MEMORY_BYTES) and held until the request is answered: photos arriving at once wait, then 503,
    instead of growing the gateway by their bytes and their copies without bound."""

    def __init__(self, budget: DecodeBudget, settings: GatewaySettings, held: ExitStack) -> None:
        self.budget, self.settings, self.held = budget, settings, held

    async def read(self, upload: UploadFile) -> bytes:
        return (await self.read_all([upload]))[0]

    async def read_all(self, uploads: list[UploadFile]) -> list[bytes]:
        """Each at most one byte past the limit (413 past it). Several photos take their share at once: two
        requests holding one photo each and waiting for their next would only wait each other out."""
        cap = self.settings.max_upload_bytes + 1
        await self._reserve(sum(cap if u.size is None else min(u.size, cap) for u in uploads))
        return [await _read_upload(u, self.settings.max_upload_bytes) for u in uploads]

    async def _reserve(self, nbytes: int) -> None:
        deadline = asyncio.get_running_loop().time() + UPLOAD_WAIT_S
        while True:
            try:
                self.held.enter_context(self.budget.reserve(nbytes))
                return
            except DecodersBusy:
                if asyncio.get_running_loop().time() >= deadline:
                    raise UploadsBusy(f"busy receiving other photos: retry (waited {UPLOAD_WAIT_S:.0f}s for "
                                      "memory)") from None
            await asyncio.sleep(UPLOAD_POLL_S)


async def _photos(request: Request) -> AsyncIterator[Photos]:
    parts = request.app.state.parts
    with ExitStack() as held:  # the shares go back once the request is answered
        yield Photos(parts.uploads, parts.settings, held)


PhotosDep = Annotated[Photos, Depends(_photos)]


async def _read_upload(upload: UploadFile, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)
    check_size(data, max_bytes)
    return data


def dog_out(dog: Dog, cls: type[DogOut] = DogOut, caller: Caller | None = None, **extra: Any) -> Any:
    """`caller`: shown the dog's owner when it is theirs (or they are an admin), so a client knows what it may
    delete; key names stay hidden from other keys. The image URLs are of the photo the dog was read from (its
    cover, or a search's best photo): a photo's URL always shows the same bytes (its id is their hash), while the
    cover may change."""
    base = photo_url(dog.id, dog.photo_id)
    owner = dog.owner if caller is not None and caller.sees(dog.owner) else None
    return cls(id=dog.id, payload=dog.payload, image_url=base, thumbnail_url=f"{base}?size=thumbnail", owner=owner,
               **extra)


def photo_url(dog_id: str, photo: str) -> str:
    return f"/v1/dogs/{dog_id}/photos/{photo}/image"


def photos_out(dog_id: str, photos: list[Photo]) -> list[PhotoOut]:
    return [PhotoOut(id=p.id, cover=p.cover, box=p.box, width=p.width, height=p.height,
                     image_url=photo_url(dog_id, p.id),
                     thumbnail_url=f"{photo_url(dog_id, p.id)}?size=thumbnail") for p in photos]
