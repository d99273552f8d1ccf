"""The storage layout's upgrade. Entries stored before dogs had ids of their own (one entry per photo, the dog, the
photo and the entry all of one id) lack the fields that say which dog and which photo an entry shows and whether
it is the dog's cover, and dogs stored before dogs were dated lack the time lists order them by; `upgrade` gives
them those, through the Index contract, so it runs the same on the embedded engine and on a Qdrant server,
in-process or across HTTP. Idempotent: what is upgraded is left alone."""
from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from dogsearch.core.errors import NotFound
from dogsearch.gallery.contracts import Index
from dogsearch.gallery.fields import INDEXED_FIELDS, MATCHED, match_key, match_keys
from dogsearch.gallery.records import dog_created_at
from dogsearch.search.contract import CollectionMissing

log = logging.getLogger("dogsearch.gallery")
_BATCH = 256
_UNDATED = {"$empty": ["dog_created_at"], "$not": {"cover": False}}  # covers, and entries of the old layout


async def upgrade(index: Index) -> int:
    """Upgrades every entry of the old layout, then gives every entry with a breed or name stored before they were
    matched by key its keys; returns how many entries were upgraded."""
    await _indexed(index)
    done = await _old_layout(index)
    for field, key in MATCHED.items():
        done += await _keyed(index, field, key)
    return done + await _dated(index)


async def undated(index: Index) -> int:
    """How many dogs `upgrade` has to date (an entry of the old layout is a dog's cover once upgraded)."""
    try:
        return await index.count(_UNDATED)
    except CollectionMissing:
        return 0


async def _indexed(index: Index) -> None:
    """A collection an older release made gets this one's payload indexes (a list's order reads one)."""
    try:
        info = await index.collection()
    except NotFound:  # nothing stored yet
        return
    await index.ensure_collection(info["dim"], info["model"], INDEXED_FIELDS)


async def _left(index: Index, filter: dict[str, Any]) -> AsyncIterator[list[dict[str, Any]]]:
    """The entries `filter` still matches, a page at a time, until none does: each page is the first of what is left,
    so the caller's writes must take its entries out of the filter (or this never ends). None before a collection."""
    while True:
        try:
            points = (await index.scroll(_BATCH, None, filter))["points"]
        except CollectionMissing:  # nothing stored yet
            return
        if not points:
            return
        yield points


async def _dated(index: Index) -> int:
    """Gives each dog stored before dogs were dated its `dog_created_at` (records.dog_created_at), which lists
    order them by: until then it is in no list."""
    done = 0
    async for points in _left(index, _UNDATED):
        for point in points:
            dog = point["payload"].get("dog_id", point["id"])
            await index.set_payload([point["id"]],
                                    {"dog_created_at": dog_created_at(dog, point["payload"].get("created_at", ""))})
        done += len(points)
    if done:
        log.info("dogs dated", extra={"dogs": done})
    return done


async def _keyed(index: Index, field: str, key: str) -> int:
    done = 0
    async for points in _left(index, {"$empty": [key], "$not": {"$empty": [field]}}):
        alike: dict[str, tuple[Any, list[str]]] = {}  # the entries of one key, written at once
        for point in points:
            value = point["payload"][field]
            keyed = match_keys({field: value})[key]
            # a value of another kind (a flag, an object) keyed by its text: never left empty, so not scrolled again
            keyed = keyed if keyed not in (None, []) else match_key(str(value))
            alike.setdefault(json.dumps(keyed), (keyed, []))[1].append(point["id"])
        for keyed, entries in alike.values():
            await index.set_payload(entries, {key: keyed})
        done += len(points)
    if done:
        log.info("breeds and names keyed", extra={"field": field, "entries": done})
    return done


async def _old_layout(index: Index) -> int:
    done = 0
    async for points in _left(index, {"$empty": ["dog_id"]}):
        for point in points:
            # One photo of one dog, the whole photo: the dog, the photo and the entry share the entry's id.
            await index.set_payload([point["id"]], {"dog_id": point["id"], "photo_id": point["id"], "cover": True})
        done += len(points)
    if done:
        log.info("storage layout upgraded", extra={"entries": done})
    return done
