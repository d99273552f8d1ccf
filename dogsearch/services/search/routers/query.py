"""Queries: the points nearest to a vector, or to a stored point (more like this)."""
from __future__ import annotations

from fastapi import APIRouter

from dogsearch.services.search import schemas as s
from dogsearch.services.search.deps import SettingsDep, StoreDep, check_k, run

router = APIRouter()


@router.post("/v1/query", response_model=s.Hits)
async def query(store: StoreDep, settings: SettingsDep, body: s.QueryRequest) -> s.Hits:
    hits = await run(store.query, body.vector, check_k(body.k, settings), s.filter_spec(body.filter), body.exclude)
    return s.Hits(hits=[s.Hit(id=h.id, score=h.score, payload=h.payload) for h in hits])


@router.post("/v1/points/{point_id}/similar", response_model=s.Hits)
async def similar(store: StoreDep, settings: SettingsDep, point_id: str, body: s.SimilarRequest) -> s.Hits:
    hits = await run(store.similar, point_id, check_k(body.k, settings), s.filter_spec(body.filter))
    return s.Hits(hits=[s.Hit(id=h.id, score=h.score, payload=h.payload) for h in hits])
