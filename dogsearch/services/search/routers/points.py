"""Points: write them (vectors as numbers or base64 float32), read them by id or page by page, count them, merge
payload keys into them, delete them."""
from __future__ import annotations

from fastapi import APIRouter, Response

from dogsearch.core.vectors import decode_f32
from dogsearch.search.contract import InvalidStoreInput, Point, PointNotFound
from dogsearch.services.search import schemas as s
from dogsearch.services.search.deps import BuilderDep, StoreDep, run

router = APIRouter(prefix="/v1/points")


@router.put("")
async def upsert(store: StoreDep, builder: BuilderDep, body: s.UpsertRequest) -> dict:
    try:
        points = [Point(id=p.id, vector=decode_f32(p.vector) if isinstance(p.vector, str) else p.vector,
                        payload=p.payload) for p in body.points]
    except ValueError as exc:
        raise InvalidStoreInput(f"vector: {exc}") from exc
    await run(store.upsert, points)
    builder.note_changes(len(points))
    return {"upserted": len(points)}


@router.get("/{point_id}", response_model=s.PointOut)
async def get_point(store: StoreDep, point_id: str, with_vector: bool = False) -> s.PointOut:
    point = await run(store.get, point_id, with_vector)
    if point is None:
        raise PointNotFound(f"no point {point_id}")
    return s.PointOut(id=point.id, payload=point.payload, vector=point.vector)


@router.post("/lookup", response_model=s.LookupResponse)
async def lookup(store: StoreDep, body: s.LookupRequest) -> s.LookupResponse:
    """Many ids in one call (bulk ingestion asks which of a batch's photos are stored already)."""
    points = await run(store.retrieve, body.ids, body.with_vector)
    return s.LookupResponse(points=[s.PointOut(id=p.id, payload=p.payload, vector=p.vector) for p in points])


@router.post("/payload")
async def set_payload(store: StoreDep, body: s.SetPayloadRequest) -> dict:
    """Merges the payload's keys into each point's payload; 404, and nothing changed, if any id is unknown."""
    await run(store.set_payload, body.ids, body.payload)
    return {"updated": len(set(body.ids))}


@router.delete("/{point_id}", status_code=204)
async def delete_point(store: StoreDep, builder: BuilderDep, point_id: str) -> Response:
    if await run(store.get, point_id) is None:
        raise PointNotFound(f"no point {point_id}")
    await run(store.delete, [point_id])
    builder.note_changes(1)
    return Response(status_code=204)


@router.post("/scroll", response_model=s.ScrollResponse)
async def scroll(store: StoreDep, body: s.ScrollRequest) -> s.ScrollResponse:
    points, nxt = await run(store.scroll, body.limit, body.offset, s.filter_spec(body.filter),
                            order_by=body.order_by)
    return s.ScrollResponse(points=[s.PointOut(id=p.id, payload=p.payload) for p in points], next=nxt)


@router.post("/count")
async def count(store: StoreDep, body: s.CountRequest) -> dict:
    return {"count": await run(store.count, s.filter_spec(body.filter))}
