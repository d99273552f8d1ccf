"""A new dog is judged as a search with the watch's photos would judge it: past the cheap first cut (its pair's
probability), by its lead over the best other dog in the gallery as it stood when its batch was stored; one query a
passing watch a batch (an embedded engine stands in for the search service)."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from dogsearch.bench.watches import StoreIndex
from dogsearch.core.judged import JudgedPart, Rerank
from dogsearch.models.calibration import Calibration
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.watches.store import Watch, WatchStore
from dogsearch.watches.watches import Watches

CAL = Calibration("m", "isotonic", {"x": [0.0, 0.8, 1.0], "y": [0.0, 0.6, 1.0]}, 0.5, first={"a": 100.0, "b": -3.0})
EARLY, BATCH_TIME, LATER = "2026-12-01T10:00:00+00:00", "2026-12-02T10:00:00+00:00", "2026-12-02T10:00:05+00:00"


class Judge:
    async def probabilities(self, model, scores):
        return CAL.probabilities(scores)

    async def leading(self, model, scores, others):
        return CAL.leading(scores, others)

    async def judged_part(self, model):
        return None


def look(own: int, share: float = 0.85) -> list[float]:
    """A unit vector: `share` of a look that the dogs here have in common, the rest its own direction."""
    v = np.zeros(16)
    v[0], v[1 + own] = np.sqrt(share), np.sqrt(1 - share)
    return v.tolist()


@pytest.fixture
def world(tmp_path):
    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(16, "m", {"dog_id": "keyword"})
        store = WatchStore(tmp_path / "watches.sqlite3")
        index = StoreIndex(edge)
        watch = Watch(str(uuid.uuid4()), None, "watched", "m", np.asarray([look(0, 0.5)], dtype=np.float32), 0.5,
                      (), None, None, None, EARLY)
        store.create(watch, "whsec_t", 10)
        yield edge, store, index, watch, Watches(store, index, Judge())
        store.close()


def put(edge: EdgeStore, dog: str, vector: list[float], created_at: str) -> str:
    entry = str(uuid.uuid4())
    edge.upsert([Point(entry, vector, {"dog_id": dog, "model": "m", "created_at": created_at})])
    return entry


def near(share_with_watch: float, own: int) -> list[float]:
    """A dog that scores `share_with_watch` against the watch's photo (look(0, 0.5))."""
    w = np.asarray(look(0, 0.5))
    other = np.zeros(16)
    other[1 + own] = 1.0
    v = share_with_watch * w + np.sqrt(1 - share_with_watch ** 2) * other
    return v.tolist()


async def test_look_alikes_in_one_batch_hold_each_other_back_and_the_dog_itself_alerts(world):
    edge, store, index, watch, watches = world
    put(edge, "watched", look(0, 0.5), EARLY)  # the watched dog: never its own rival
    a = put(edge, "alike-1", near(0.9, 5), BATCH_TIME)
    b = put(edge, "alike-2", near(0.9, 6), BATCH_TIME)
    assert CAL.probability(0.9) >= 0.5  # both pass the first cut
    assert await watches.check([a, b]) == 0  # each leads the other by nothing
    assert index.queries == 1  # one query for the watch, though two dogs passed it
    dog = put(edge, "the-dog", near(0.99, 7), LATER)
    assert await watches.check([dog]) == 1
    (match,) = store.matches(watch.id, 10)
    assert match["dog_id"] == "the-dog"
    assert match["probability"] == pytest.approx(float(CAL.leading([0.99], [0.9])[0]), abs=1e-4)


async def test_a_look_alike_stored_after_the_batch_is_no_rival_of_it(world):
    """A check that runs late (behind a bulk job on the queue) or again judges against the gallery as it stood
    when its batch was stored."""
    edge, store, index, watch, watches = world
    dog = put(edge, "the-dog", near(0.95, 5), BATCH_TIME)
    put(edge, "later-twin", near(0.95, 6), LATER)
    assert await watches.check([dog]) == 1
    assert [m["dog_id"] for m in store.matches(watch.id, 10)] == ["the-dog"]


async def test_another_sighting_of_a_matched_dog_alerts_too(world):
    """A lost dog reported again, as another dog, is as like the watch as its first report: judged against the
    dogs the watch matched it led them by nothing and never alerted, though it says where the dog is now. A
    look-alike still holds it back, and the first report is no known rival either (`_known_rivals`)."""
    edge, store, index, watch, watches = world
    put(edge, "look-alike", near(0.9, 4), EARLY)
    first = put(edge, "first-report", near(0.97, 5), BATCH_TIME)
    assert await watches.check([first]) == 1
    again = put(edge, "second-report", near(0.97, 6), LATER)
    assert await watches.check([again]) == 1
    later = "2026-12-02T11:00:00+00:00"
    third = put(edge, "third-report", near(0.97, 7), later)
    assert await watches.check([third]) == 1
    assert [m["dog_id"] for m in store.matches(watch.id, 10)] == ["third-report", "second-report", "first-report"]
    probabilities = {m["dog_id"]: m["probability"] for m in store.matches(watch.id, 10)}
    assert probabilities["third-report"] == pytest.approx(float(CAL.leading([0.97], [0.9])[0]), abs=1e-4)
    twin = put(edge, "look-alike-2", near(0.9, 8), "2026-12-02T12:00:00+00:00")
    assert await watches.check([twin]) == 0  # no lead over the first look-alike


async def test_no_watch_passed_no_query(world):
    edge, store, index, watch, watches = world
    far = put(edge, "far", near(0.1, 5), BATCH_TIME)
    assert await watches.check([far]) == 0 and index.queries == 0


class PartJudge(Judge):
    """Verdicts read the first 8 of 16 components (a fusion's ViT part, the breed part after it weighing 1)."""

    async def judged_part(self, model):
        return JudgedPart(8, float(np.sqrt(2)))


def fusion(vit: list[float], breeds: list[float]) -> list[float]:
    vit, breeds = np.asarray(vit) / np.linalg.norm(vit), np.asarray(breeds) / np.linalg.norm(breeds)
    return (np.concatenate([vit, breeds]) / np.sqrt(2)).tolist()


def vit(k: int, share: float) -> list[float]:
    """An 8-d ViT part whose cosine with the watched dog's (axis 0) is `share`."""
    v = np.zeros(8)
    v[0], v[k] = share, np.sqrt(1 - share ** 2)
    return v.tolist()


BREED, OTHER = [1.0, 0, 0, 0, 0, 0, 0, 0], [0.6, 0.8, 0, 0, 0, 0, 0, 0]  # breed parts: the watched dog's, another


@pytest.fixture
def fused(tmp_path):
    """A watch on a fusion's vectors (its ViT part on axis 0, of breed part BREED), judged by the ViT part."""
    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(16, "m", {"dog_id": "keyword"})
        store = WatchStore(tmp_path / "watches.sqlite3")
        watch = Watch(str(uuid.uuid4()), None, "watched", "m", np.asarray([fusion(vit(1, 1.0), BREED)], np.float32),
                      0.5, (), None, None, None, EARLY)
        store.create(watch, "whsec_t", 10)
        yield edge, store, watch, Watches(store, StoreIndex(edge), PartJudge())
        store.close()


async def test_a_fusion_s_watch_judges_by_the_part_its_searches_are_judged_by(fused):
    """The watched dog's breed part is shared by a look-alike, which the fusion ranks above the dog itself; on the
    ViT part the dog itself leads, so it alerts, with the probability its lead on that part gives. No known rival
    spares a query here: on the part, the search's rival may score below it."""
    edge, store, watch, watches = fused
    alike = put(edge, "look-alike", fusion(vit(2, 0.93), BREED), BATCH_TIME)
    dog = put(edge, "the-dog", fusion(vit(3, 0.99), OTHER), BATCH_TIME)
    whole = {e: float(np.dot(edge.retrieve([e], True)[0].vector, watch.vectors[0])) for e in (alike, dog)}
    assert whole[alike] > whole[dog]  # by the whole vector the look-alike comes first
    assert await watches.check([alike, dog]) == 1
    (match,) = store.matches(watch.id, 10)
    assert match["dog_id"] == "the-dog" and match["score"] == pytest.approx(0.99, abs=1e-4)
    assert match["probability"] == pytest.approx(float(CAL.leading([0.99], [0.93])[0]), abs=1e-4)
    assert store.rivals([watch.id]) == {}  # nothing reads known rivals under a part: none is written


async def test_a_fusion_s_watch_judges_against_the_best_part_among_the_dogs_its_search_shows(fused):
    """A third dog, ranked third by the whole vector (not among the first two), is 0.01 behind the dog on the ViT
    part: the search shows it, so the dog does not stand out and nothing alerts."""
    edge, store, watch, watches = fused
    entries = [put(edge, "look-alike", fusion(vit(2, 0.93), BREED), BATCH_TIME),
               put(edge, "the-dog", fusion(vit(3, 0.99), OTHER), BATCH_TIME),
               put(edge, "third", fusion(vit(4, 0.98), [0.6, 0.79, 0.1, 0, 0, 0, 0, 0]), BATCH_TIME)]
    assert await watches.check(entries) == 0


async def test_a_fusion_s_watches_are_put_on_the_part_once_until_they_change(fused):
    """The watches' rows on the verdicts' part are made once per set of watches, not on every batch."""
    edge, store, watch, watches = fused
    part = await watches.judge.judged_part("m")
    group = (await watches._current())["m"]
    on_part = watches._judged_by("m", group, part)
    assert watches._judged_by("m", (await watches._current())["m"], part) is on_part
    assert on_part.rows == pytest.approx(part.queries(group.rows))
    other = Watch(str(uuid.uuid4()), None, "other", "m", np.asarray([fusion(vit(5, 1.0), OTHER)], np.float32), 0.5,
                  (), None, None, None, EARLY)
    store.create(other, "whsec_u", 10)
    again = watches._judged_by("m", (await watches._current())["m"], part)
    assert again is not on_part and len(again.rows) == 2


class RerankingPartJudge(PartJudge):
    """The part of PartJudge, and a re-ranking of a search's first dogs (the default fusion's kind)."""

    async def judged_part(self, model):
        return JudgedPart(8, float(np.sqrt(2)), Rerank(1.0, 0.5, 100))


async def test_a_watch_judges_against_the_first_dogs_by_the_whole_vector_not_re_ranked(fused, tmp_path):
    """Re-ranking a watch's search would cost a query of 100 dogs more and alerted no better on held-out dogs: a
    watch under a re-ranking part asks what it asks without one and alerts alike."""
    edge, store, watch, watches = fused
    put(edge, "look-alike", fusion(vit(2, 0.93), BREED), BATCH_TIME)
    dog = put(edge, "the-dog", fusion(vit(3, 0.99), OTHER), BATCH_TIME)
    index, asked = watches.index, watches.index.queries
    assert await watches.check([dog]) == 1
    plain_queries, asked = index.queries - asked, index.queries
    (plain,) = store.matches(watch.id, 10)
    other = WatchStore(tmp_path / "again.sqlite3")  # the same watch, under a part that re-ranks
    other.create(watch, "whsec_t", 10)
    try:
        assert await Watches(other, index, RerankingPartJudge()).check([dog]) == 1
        assert index.queries - asked == plain_queries
        (match,) = other.matches(watch.id, 10)
    finally:
        other.close()
    assert (match["dog_id"], match["probability"]) == (plain["dog_id"], plain["probability"])
