"""What query expansion (gallery/expansion.py, DOGSEARCH_GATEWAY_QUERY_EXPANSION) costs a search's ranking: the
gallery's `nearest_dogs` for k = 10 dogs, plain and with 2 neighbours, against the bare store's one query for the
same 20 entries, on an embedded store in this process (no HTTP round trip counted: over the network each extra call
adds one). The gallery: N dogs of 1-3 photos each, in breeds (a dog's photos near its own centre, near its breed's),
so that neighbours are look-alikes as in real use; the queries are fresh photos of stored dogs. Also how often the
first dog stays the plain search's (always, with two neighbours) and how many of the ten are the same. And what
judging by a part costs (core/judged.py, a fusion's ViT part: one more query, for the ten dogs ranked), here the
vectors' first 256 components standing in for the part: the time is the same whatever they hold; and what re-ranking
the first 100 dogs by the part and the rest costs (the default fusion's way: one query more, for 100 dogs), alone and
with the expansion (whose re-ranking reads the expanded query's part and rest too: two queries more).

    python -m dogsearch.bench.ranking [--quick] [--json]
    dogsearch bench --only ranking
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid

import numpy as np

from dogsearch.bench.common import percentile
from dogsearch.bench.watches import StoreIndex
from dogsearch.core.judged import JudgedPart, Rerank
from dogsearch.gallery.expansion import Expansion
from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.gallery.gallery import nearest_dogs
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore

DIM, K, BREEDS = 384, 10, 200
EXPANSION = Expansion(2)
PART = JudgedPart(256, 1.0)
RERANKED = JudgedPart(256, 1.02, Rerank(0.75, 0.4, 100))  # the default fusion's (models/<id>/calibration.json)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def dogs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Each dog's centre (near its breed's) and its photos' (dog id, vector)."""
    breeds = unit(rng.standard_normal((BREEDS, DIM)))
    centres = unit(breeds[rng.integers(0, BREEDS, n)] + 0.06 * rng.standard_normal((n, DIM)))
    photos: list[tuple[str, np.ndarray]] = []
    for centre in centres:
        dog = str(uuid.uuid4())
        photos += [(dog, unit(centre + 0.04 * rng.standard_normal(DIM))) for _ in range(rng.integers(1, 4))]
    return centres, photos


def run(quick: bool = False) -> dict:
    n, queries = (2_000, 50) if quick else (10_000, 200)
    rng = np.random.default_rng(0)
    centres, photos = dogs(n, rng)
    asks = unit(centres[rng.integers(0, n, queries)] + 0.04 * rng.standard_normal((queries, DIM)))
    times: dict[str, list[float]] = {"bare": [], "plain": [], "expanded": [], "judged": [], "reranked": [],
                                   "expanded_reranked": []}
    same_first, overlap = 0, 0
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-ranking-") as tmp, EdgeStore(tmp) as edge:
        edge.ensure_collection(DIM, "bench", INDEXED_FIELDS)
        for i in range(0, len(photos), 1000):
            edge.upsert([Point(str(uuid.uuid4()), v.tolist(), {"dog_id": dog, "cover": True, "format": "JPEG"})
                         for dog, v in photos[i:i + 1000]])
        index = StoreIndex(edge)
        loop = asyncio.new_event_loop()
        for q in asks[: min(10, queries)]:  # warm-up: the index built, the caches filled
            loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean", EXPANSION))
        for q in asks:  # alternated, so that drift on a busy machine falls on all of them alike
            start = time.perf_counter()
            edge.query(q.tolist(), 2 * K)
            times["bare"].append(time.perf_counter() - start)
            start = time.perf_counter()
            plain = loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean"))
            times["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            expanded = loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean", EXPANSION))
            times["expanded"].append(time.perf_counter() - start)
            start = time.perf_counter()
            loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean", judged=PART))
            times["judged"].append(time.perf_counter() - start)
            start = time.perf_counter()
            loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean", judged=RERANKED))
            times["reranked"].append(time.perf_counter() - start)
            start = time.perf_counter()
            loop.run_until_complete(nearest_dogs(index, q[None, :], K, None, "mean", EXPANSION, RERANKED))
            times["expanded_reranked"].append(time.perf_counter() - start)
            same_first += plain[0].dog.id == expanded[0].dog.id
            overlap += len({m.dog.id for m in plain} & {m.dog.id for m in expanded})
        loop.close()
    p50 = {name: percentile([t * 1000 for t in ts], 50) for name, ts in times.items()}
    return {
        "ranking_entries": len(photos),
        "ranking_p50_ms_bare_query": round(p50["bare"], 3),
        "ranking_p50_ms_plain": round(p50["plain"], 3),
        "ranking_p50_ms_expanded": round(p50["expanded"], 3),
        "ranking_plain_over_bare": round(p50["plain"] / p50["bare"], 2),
        "ranking_expanded_over_plain": round(p50["expanded"] / p50["plain"], 2),
        "ranking_p50_ms_judged_by_part": round(p50["judged"], 3),
        "ranking_judged_by_part_over_plain": round(p50["judged"] / p50["plain"], 2),
        "ranking_p50_ms_reranked": round(p50["reranked"], 3),
        "ranking_reranked_over_plain": round(p50["reranked"] / p50["plain"], 2),
        "ranking_p50_ms_expanded_reranked": round(p50["expanded_reranked"], 3),
        "ranking_expanded_reranked_over_plain": round(p50["expanded_reranked"] / p50["plain"], 2),
        "ranking_expanded_first_same_share": round(same_first / queries, 4),
        "ranking_expanded_top10_overlap": round(overlap / (queries * K), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.quick)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
