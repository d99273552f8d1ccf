"""Ranking dogs, not photos, when dogs have many photos (docs/lost-and-found.md, "Several photos of a dog"): the
gallery's exclusion rounds (gallery.gallery._best_per_dog) against the doubling loop it replaced, on the embedded
engine with the collection's payload indexes, on made-up 384-d vectors. Prints, per case and k, engine calls and
entries fetched per search, milliseconds per search (the two back to back), and whether the k dogs are exactly those
of a brute-force ranking (each dog by its best photo).

    python scripts/dog-ranking.py
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.gallery import gallery  # noqa: E402
from dogsearch.gallery.records import Dog, Match  # noqa: E402
from dogsearch.search.contract import Point  # noqa: E402
from dogsearch.search.edge import EdgeStore  # noqa: E402

DIM = 384
CASES = (("4 photos a dog, 5,000 dogs", (0, 0, 5000, 4)),
         ("20 look-alike dogs of 150 photos + 3,000 dogs of 3", (20, 150, 3000, 3)),
         ("5 look-alike dogs of 40 photos + 3,000 dogs of 3", (5, 40, 3000, 3)))
rng = np.random.default_rng(0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


async def doubling(nearest, k: int) -> list[Match]:
    """The loop before: ask for k entries, then twice as many while fewer than k dogs came, at most 1,000."""
    n = k
    while True:
        hits = await nearest(n, None)
        best: dict[str, Match] = {}
        for hit in hits:
            dog = Dog.from_entry(hit)
            best.setdefault(dog.id, Match(dog, hit["score"]))
        if len(best) >= k or len(hits) < n or n >= 1000:
            return list(best.values())[:k]
        n = min(2 * n, 1000)


def build(path: str, crowd_dogs: int, crowd_photos: int, other_dogs: int, other_photos: int):
    """Look-alike dogs with many photos near the query, and other dogs anywhere."""
    store = EdgeStore(path)
    store.ensure_collection(DIM, "bench", {"dog_id": "keyword", "cover": "bool", "photo_id": "keyword"})
    query = unit(rng.normal(size=DIM))
    points, vectors, dogs = [], [], []
    for n in range(crowd_dogs + other_dogs):
        dog, photos = str(uuid.uuid4()), crowd_photos if n < crowd_dogs else other_photos
        centre = unit(query + rng.normal(size=DIM) * 0.05) if n < crowd_dogs else unit(rng.normal(size=DIM))
        for p in range(photos):
            vector, entry = unit(centre + rng.normal(size=DIM) * 0.02), str(uuid.uuid4())
            points.append(Point(entry, vector.tolist(), {"dog_id": dog, "cover": p == 0, "photo_id": entry}))
            vectors.append(vector)
            dogs.append(dog)
    for i in range(0, len(points), 1000):
        store.upsert(points[i:i + 1000])
    return store, query, np.array(vectors), np.array(dogs)


def brute_force(query: np.ndarray, vectors: np.ndarray, dogs: np.ndarray, k: int) -> list[str]:
    best: dict[str, float] = {}
    scores = vectors @ query
    for i in np.argsort(-scores):
        best.setdefault(dogs[i], scores[i])
        if len(best) == k:
            break
    return list(best)


async def main() -> None:
    for name, shape in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            store, query, vectors, dogs = build(tmp, *shape)
            for k in (10, 50):
                truth = brute_force(query, vectors, dogs, k)
                for label, run in (("doubling", doubling), ("exclusion rounds", gallery._best_per_dog)):
                    calls: list[int] = []

                    async def nearest(n, flt, calls=calls, store=store, query=query):
                        calls.append(n)
                        return [{"id": h.id, "score": h.score, "payload": h.payload}
                                for h in store.query(query, n, flt, exact=True)]

                    await run(nearest, k)  # warm
                    calls.clear()
                    start = time.perf_counter()
                    for _ in range(5):
                        got = await run(nearest, k)
                    ms = (time.perf_counter() - start) / 5 * 1000
                    print(f"{name} | k={k} | {label}: {len(calls) // 5} calls, {sum(calls) // 5} entries, "
                          f"{ms:.1f} ms, {len(got)} dogs, exact={[m.dog.id for m in got] == truth}")
            store.close()


if __name__ == "__main__":
    asyncio.run(main())
