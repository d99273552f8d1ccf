"""A watch's known rival (the best other dog its search was seen to show) saves the lead query of a pair that cannot
alert, and changes no outcome: the same matches and probabilities as querying every time, a rival deleted or no
longer shown does not count, a check run again for an older batch ignores a rival stored after it, and a watches
file from before the rivals keeps working."""
from __future__ import annotations

import sqlite3
import uuid

import numpy as np
import pytest

from dogsearch.bench.watches import StoreIndex
from dogsearch.gallery.multiquery import combined_scores
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.watches.store import Watch, WatchStore
from dogsearch.watches.watches import Watches
from tests.watches.test_lead import CAL, EARLY, Judge, near, put

BATCH_TIME, LATER, LATEST = "2026-12-02T10:00:00+00:00", "2026-12-02T10:00:05+00:00", "2026-12-02T10:00:10+00:00"


def found(edge: EdgeStore, dog: str, vector: list[float], created_at: str) -> str:
    entry = str(uuid.uuid4())
    edge.upsert([Point(entry, vector, {"dog_id": dog, "model": "m", "created_at": created_at, "status": "found"})])
    return entry


@pytest.fixture
def world(tmp_path):
    """A watch for a lost dog: found dogs only."""
    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(16, "m", {"dog_id": "keyword", "status": "keyword", "created_at": "datetime"})
        store = WatchStore(tmp_path / "watches.sqlite3")
        index = StoreIndex(edge)
        watch = Watch(str(uuid.uuid4()), None, "watched", "m", np.asarray([near(1.0, 0)], dtype=np.float32), 0.5,
                      ("found",), None, None, None, EARLY)
        store.create(watch, "whsec_t", 10)
        yield edge, store, index, watch, Watches(store, index, Judge())
        store.close()


async def test_a_look_alike_that_a_known_rival_holds_back_costs_no_query(world):
    edge, store, index, watch, watches = world
    rival = found(edge, "old-look-alike", near(0.92, 1), EARLY)
    first = found(edge, "look-alike-1", near(0.9, 2), BATCH_TIME)
    assert await watches.check([first]) == 0 and index.queries == 1  # no rival known yet: the query finds one
    assert store.rivals([watch.id]) == {watch.id: (rival, pytest.approx(0.92, abs=1e-4))}
    second = found(edge, "look-alike-2", near(0.91, 3), LATER)
    assert await watches.check([second]) == 0 and index.queries == 1  # leads the known rival by less than nothing
    assert store.matches(watch.id, 10) == []
    better = found(edge, "look-alike-3", near(0.93, 4), LATEST)  # could alert? 0.01 ahead: no, and it becomes the rival
    assert await watches.check([better]) == 0 and index.queries == 1
    assert store.rivals([watch.id])[watch.id][0] == better


@pytest.mark.parametrize("change", ["deleted", "status changed"])
async def test_a_rival_deleted_or_no_longer_shown_does_not_count(world, change):
    edge, store, index, watch, watches = world
    rival = found(edge, "old-look-alike", near(0.94, 1), EARLY)
    first = found(edge, "look-alike", near(0.9, 2), BATCH_TIME)
    assert await watches.check([first]) == 0
    assert store.rivals([watch.id])[watch.id][0] == rival
    if change == "deleted":
        edge.delete([rival])
    else:
        edge.set_payload([rival], {"status": "home"})
    dog = found(edge, "the-dog", near(0.95, 3), LATER)  # 0.01 ahead of the rival, 0.05 of the look-alike
    assert await watches.check([dog]) == 1 and index.queries == 2
    (match,) = store.matches(watch.id, 10)
    assert match["dog_id"] == "the-dog"
    assert match["probability"] == pytest.approx(float(CAL.leading([0.95], [0.9])[0]), abs=1e-4)
    assert store.rivals([watch.id])[watch.id][0] == dog  # the query's best dog replaced the one forgotten


async def test_a_check_run_again_for_an_older_batch_ignores_a_rival_stored_after_it(world):
    """The worker of batch A died before it checked; batch B, stored later, was checked first and its look-alike is
    now the known rival. A's check, run again, judges against the gallery as it stood when A was stored."""
    edge, store, index, watch, watches = world
    a = found(edge, "the-dog", near(0.95, 1), BATCH_TIME)
    b = found(edge, "later-look-alike", near(0.97, 2), LATER)
    assert await watches.check([b]) == 0  # 0.02 ahead of the dog: not enough
    assert store.rivals([watch.id])[watch.id][0] == b
    assert await watches.check([a]) == 1 and index.queries == 2
    assert [m["dog_id"] for m in store.matches(watch.id, 10)] == ["the-dog"]
    assert store.rivals([watch.id])[watch.id][0] == b  # a rival stored later is not forgotten


async def test_a_watches_file_from_before_the_rivals_keeps_working(tmp_path):
    path = tmp_path / "watches.sqlite3"
    store = WatchStore(path)
    watch = Watch(str(uuid.uuid4()), None, "watched", "m", np.asarray([near(1.0, 0)], dtype=np.float32), 0.5, (),
                  None, None, None, EARLY)
    store.create(watch, "whsec_t", 10)
    store.close()
    with sqlite3.connect(path) as db:  # as the file was before the rivals
        db.execute("DROP TABLE rivals")
    store = WatchStore(path)
    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(16, "m", {"dog_id": "keyword"})
        rival = put(edge, "old-look-alike", near(0.92, 1), EARLY)
        dog = put(edge, "look-alike", near(0.9, 2), BATCH_TIME)
        assert await Watches(store, StoreIndex(edge), Judge()).check([dog]) == 0
    assert store.list(everyone=True)[0].id == watch.id
    assert store.rivals([watch.id])[watch.id][0] == rival
    assert store.delete(watch.id) and store.rivals([watch.id]) == {}
    store.close()


@pytest.mark.parametrize("rule", ["mean", "max"])
async def test_known_rivals_change_no_outcome_on_a_random_gallery(tmp_path, rule):
    """Batches of look-alikes of a few breeds and of the dogs looked for, with dogs deleted and statuses changed
    between them, checked with
    the known rivals and with none (forgotten before every check): the same matches and probabilities, fewer
    queries. Watches of two photos combine them by `rule`, as a search does."""
    rng = np.random.default_rng(7)
    dim, breeds = 16, 3
    centres = rng.standard_normal((breeds, dim))

    def like(v: np.ndarray, spread: float) -> list[float]:
        v = v / np.linalg.norm(v) + spread * rng.standard_normal(dim) / np.sqrt(dim)
        return (v / np.linalg.norm(v)).tolist()

    def dog_of(breed: int, spread: float) -> list[float]:
        return like(centres[breed], spread)

    def stored(dog: str, vector: list[float], created_at: str) -> Point:
        return Point(str(uuid.uuid4()), vector, {"dog_id": dog, "model": "m", "created_at": created_at,
                                                 "status": str(rng.choice(["found", "sighted", "lost"])),
                                                 "location": {"lat": 52 + rng.uniform(-0.2, 0.2),
                                                              "lon": 13 + rng.uniform(-0.2, 0.2)}})

    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(dim, "m", {"dog_id": "keyword", "status": "keyword", "created_at": "datetime",
                                          "location": "geo"})
        gallery = [stored(f"old-{n}", dog_of(n % breeds, 0.35), EARLY) for n in range(60)]
        edge.upsert(gallery)
        vectors = {p.payload["dog_id"]: p.vector for p in gallery}  # every dog stored, deleted later or not
        stores = [WatchStore(tmp_path / "cached.sqlite3"), WatchStore(tmp_path / "uncached.sqlite3")]
        indexes = [StoreIndex(edge), StoreIndex(edge)]
        checkers = [Watches(s, i, Judge(), rule=rule) for s, i in zip(stores, indexes, strict=True)]
        watch_ids, watch_photos, looked_for = [], [], []
        for n in range(12):
            looked_for.append(np.asarray(dog_of(n % breeds, 0.3)))
            photos = np.asarray([like(looked_for[-1], 0.1) for _ in range(1 + n % 2)], dtype=np.float32)
            watch = Watch(str(uuid.uuid4()), None, f"old-{n}" if n % 3 else None, "m", photos,
                          float(rng.choice([0.3, 0.5])), ("found", "sighted") if n % 4 == 0 else (),
                          (52.0, 13.0) if n % 5 == 0 else None, 15.0 if n % 5 == 0 else None, None, EARLY)
            for s in stores:
                s.create(watch, "whsec_t", 100)
            watch_ids.append(watch.id)
            watch_photos.append(photos)
        for b in range(12):
            created = f"2026-12-02T10:{b:02d}:00+00:00"
            batch = [stored(f"new-{b}-{k}", like(looked_for[int(rng.integers(12))], rng.uniform(0.05, 0.3))
                            if rng.random() < 0.4 else dog_of(int(rng.integers(breeds)), 0.35), created)
                     for k in range(4)]
            edge.upsert(batch)
            gallery += batch
            vectors |= {p.payload["dog_id"]: p.vector for p in batch}
            if b % 3 == 2:  # the gallery moves: dogs deleted, statuses changed
                edge.delete([gallery.pop(int(rng.integers(len(gallery)))).id for _ in range(3)])
                edge.set_payload([p.id for p in rng.choice(gallery, 5, replace=False)], {"status": "home"})
            stores[1].db.execute("DELETE FROM rivals")
            ids = [p.id for p in batch]
            assert await checkers[0].check(ids) == await checkers[1].check(ids)
        for w, photos in zip(watch_ids, watch_photos, strict=True):
            cached, uncached = ([(m["dog_id"], round(m["probability"], 6), round(m["score"], 6))
                                 for m in s.matches(w, 100)] for s in stores)
            assert sorted(cached) == sorted(uncached)
            for dog, _, score in cached:  # the score a search with the watch's photos gives the dog
                assert score == pytest.approx(float(combined_scores(photos, [vectors[dog]], rule)[0]), abs=1e-5)
        alerts = sum(len(stores[1].matches(w, 100)) for w in watch_ids)
        assert alerts > 0 and indexes[0].queries < indexes[1].queries, (alerts, indexes[0].queries)
        for s in stores:
            s.close()
