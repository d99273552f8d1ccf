"""Stored photos served with validators: an ETag (and a Last-Modified where it can be trusted), and 304 with no body
when the client's copy is still the one stored (RFC 9110 13.1)."""
from __future__ import annotations

import asyncio
import hashlib
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from fastapi import Request, Response
from fastapi.responses import FileResponse

from dogsearch.gallery.photos import media_type

# Kept by browsers only, never by a proxy or CDN: a gallery behind keys is asked for with X-API-Key, which, unlike
# Authorization, does not keep a shared cache from serving the photo to anyone. And asked again each time: who may
# see a photo, and whether it still exists (deleted, a key revoked, signed out), is decided on every view; a photo's
# id is its bytes' hash, so the ETag stays the same for as long as it is stored and the answer is most often a 304.
CACHE_CONTROL = "private, no-cache"
# What a 304 repeats of the 200 it stands for (RFC 9110 15.4.5).
_KEPT = ("cache-control", "etag", "last-modified")


async def image_answer(request: Request, path: Path, *, dated: bool = True) -> Response:
    """The image file at `path`, or a 304 when If-None-Match names its ETag or, without one, If-Modified-Since is
    not before its Last-Modified. `dated=False`: no Last-Modified, where the same URL may come to serve an older
    file (a dog's cover, when its photo is removed), which If-Modified-Since would take for the copy it holds."""
    stat = await asyncio.to_thread(path.stat)
    # the file's name too: another photo (another cover) of the same size written in the same instant differs
    etag = '"' + hashlib.md5(f"{path.name}:{stat.st_mtime_ns}:{stat.st_size}".encode(),
                             usedforsecurity=False).hexdigest() + '"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
    if dated:
        headers["Last-Modified"] = formatdate(stat.st_mtime, usegmt=True)
    if _unchanged(request, etag, stat.st_mtime if dated else None):
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k.lower() in _KEPT})
    answer = FileResponse(path, media_type=media_type(path), headers=headers, stat_result=stat)
    if not dated:
        del answer.headers["last-modified"]  # FileResponse's own
    return answer


def _unchanged(request: Request, etag: str, modified: float | None) -> bool:
    tags = request.headers.get("if-none-match")
    if tags is not None:  # it decides alone when sent
        return tags.strip() == "*" or etag in (tag.strip().removeprefix("W/") for tag in tags.split(","))
    since = request.headers.get("if-modified-since")
    if since is None or modified is None:
        return False
    try:
        return parsedate_to_datetime(since).timestamp() >= int(modified)  # HTTP dates have whole seconds
    except (TypeError, ValueError):  # not a date: ignored, as RFC 9110 says
        return False
