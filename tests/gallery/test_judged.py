"""Ranked by the whole vector, judged by its part (core/judged.py): on an embedded engine, the dogs come in the
order of the fused vectors, and each carries the cosine of its ViT part, exact, as the calibration reads it."""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from dogsearch.bench.watches import StoreIndex
from dogsearch.core.judged import JudgedPart, Rerank, judged_part
from dogsearch.gallery.expansion import Expansion, expand, expanded_queries
from dogsearch.gallery.gallery import nearest_dogs
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore

VIT, BREEDS, W = 6, 3, 0.5  # a fusion's parts: [vit, W * breeds], each a unit vector, the whole normalised
PART = JudgedPart(VIT, float(np.sqrt(1 + W ** 2)))


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def fused(vit, breeds) -> np.ndarray:
    return unit(np.concatenate([unit(vit), W * unit(breeds)])).astype(np.float32)


@pytest.fixture
def index(tmp_path):
    with EdgeStore(tmp_path / "vectors") as edge:
        edge.ensure_collection(VIT + BREEDS, "m", {"dog_id": "keyword"})
        yield edge, StoreIndex(edge)


def put(edge: EdgeStore, dog: str, vector: np.ndarray) -> None:
    edge.upsert([Point(str(uuid.uuid4()), vector.tolist(), {"dog_id": dog})])


def vit_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(a[:VIT]) @ unit(b[:VIT]))


@pytest.mark.parametrize("rule", ["mean", "max"])
async def test_the_fusion_ranks_and_each_dog_carries_its_best_part_cosine(index, rule):
    edge, idx = index
    query = np.stack([fused([1, 0.2, 0, 0, 0, 0], [1, 0, 0]), fused([1, 0, 0.2, 0, 0, 0], [1, 0.1, 0])])
    # the dog itself: its ViT part is the nearest, its breed part a little off; a look-alike of the query's breed, a
    # little further on the ViT part, first by the whole vector; a dog of another breed
    dogs = {"itself": [fused([1, 0.1, 0.1, 0, 0, 0], [0.6, 0.8, 0]), fused([1, 0.3, 0, 0.1, 0, 0], [0.5, 0.8, 0.1])],
            "look-alike": [fused([1, 0.3, 0.3, 0.3, 0, 0], [1, 0, 0])],
            "other": [fused([0.2, 0, 0, 1, 1, 0], [0, 0, 1])]}
    for dog, vectors in dogs.items():
        for v in vectors:
            put(edge, dog, v)

    plain = await nearest_dogs(idx, query, 3, None, rule)
    judged = await nearest_dogs(idx, query, 3, None, rule, judged=PART)
    assert [m.dog.id for m in judged] == [m.dog.id for m in plain] == ["look-alike", "itself", "other"]
    assert [m.score for m in judged] == [m.score for m in plain] and all(m.judged is None for m in plain)

    def expected(dog: str) -> float:  # the rule over the query photos, each dog by its best photo
        per_photo = np.array([[vit_cos(q, v) for q in query] for v in dogs[dog]])
        return float((per_photo.mean(axis=1) if rule == "mean" else per_photo.max(axis=1)).max())

    assert [m.judged for m in judged] == pytest.approx([expected(m.dog.id) for m in judged], abs=1e-5)
    assert judged[1].judged > judged[0].judged  # the part says what the ranking could not: the dog itself leads
    assert [m.verdict_score for m in judged] == [m.judged for m in judged]


async def test_an_expanded_search_is_judged_by_its_plain_query_s_part(index):
    edge, idx = index
    query = fused([1, 0, 0, 0, 0, 0], [1, 0, 0])[None, :]
    for n, angle in enumerate((0.1, 0.4, 0.7, 1.0)):
        put(edge, f"dog-{n}", fused([np.cos(angle), np.sin(angle), 0, 0, 0, 0], [np.cos(n), np.sin(n), 0]))
    found = await nearest_dogs(idx, query, 4, None, "mean", Expansion(2), PART)
    assert len(found) == 4
    for m in found:
        n = int(m.dog.id.split("-")[1])
        assert m.judged == pytest.approx(np.cos((0.1, 0.4, 0.7, 1.0)[n]), abs=1e-5)


async def test_a_filter_holds_for_the_part_s_scores_too(index):
    edge, idx = index
    put(edge, "a", fused([1, 0, 0, 0, 0, 0], [1, 0, 0]))
    put(edge, "b", fused([1, 0.1, 0, 0, 0, 0], [1, 0, 0]))
    query = fused([1, 0, 0, 0, 0, 0], [1, 0, 0])[None, :]
    found = await nearest_dogs(idx, query, 2, {"$not": {"dog_id": "a"}}, "mean", judged=PART)
    assert [m.dog.id for m in found] == ["b"] and found[0].judged == pytest.approx(vit_cos(query[0], fused(
        [1, 0.1, 0, 0, 0, 0], [1, 0, 0])), abs=1e-5)


def test_the_part_of_a_vector_is_a_padded_unit_vector_and_a_bad_part_is_refused():
    v = fused([3, 4, 0, 0, 0, 0], [0, 1, 0])
    q = PART.queries(v[None, :])[0]
    assert q[:VIT] == pytest.approx(unit([3, 4, 0, 0, 0, 0]), abs=1e-6) and not q[VIT:].any()
    assert float(q @ v) * PART.scale == pytest.approx(1.0, abs=1e-6)  # the engine's score, scaled: the part cosine
    for dims, scale in ((0, 1.2), (6, 0.5), (6, float("inf"))):
        with pytest.raises(ValueError):
            JudgedPart(dims, scale)


def breed_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(unit(a[VIT:]) @ unit(b[VIT:]))


RERANK = Rerank(weight=1.0, cap=0.5, depth=3)
RERANKED = JudgedPart(VIT, PART.scale, RERANK)


def breed(bhattacharyya: float) -> list[float]:
    """A breed part whose cosine with [1, 0, 0] is the given one."""
    return [bhattacharyya, float(np.sqrt(1 - bhattacharyya ** 2)), 0]


async def test_a_reranking_part_ranks_the_first_dogs_by_the_part_and_the_capped_rest(index):
    edge, idx = index
    query = fused([1, 0, 0, 0, 0, 0], [1, 0, 0])[None, :]
    # the dog itself: nearest on the ViT part, its breed opinion past the cap; a look-alike that shares the query's
    # breed opinion exactly, first by the whole vector; a dog of another breed, second on the ViT part alone
    dogs = {"itself": fused([1, 0.25, 0, 0, 0, 0], breed(0.6)), "look-alike": fused([1, 0, 0.32, 0, 0, 0], breed(1.0)),
            "other breed": fused([1, 0, 0, 0.3, 0, 0], breed(0.0))}
    for dog, v in dogs.items():
        put(edge, dog, v)
    plain = await nearest_dogs(idx, query, 3, None, "mean", judged=PART)
    assert [m.dog.id for m in plain] == ["look-alike", "itself", "other breed"]
    assert sorted(plain, key=lambda m: -m.judged)[1].dog.id == "other breed"  # the ViT part alone ranks it second

    again = await nearest_dogs(idx, query, 3, None, "mean", judged=RERANKED)
    assert [m.dog.id for m in again] == ["itself", "look-alike", "other breed"]
    expected = {dog: float(RERANK.scores(vit_cos(query[0], v), breed_cos(query[0], v))) for dog, v in dogs.items()}
    assert [m.score for m in again] == pytest.approx([expected[m.dog.id] for m in again], abs=1e-5)
    assert [m.judged for m in again] == pytest.approx([vit_cos(query[0], dogs[m.dog.id]) for m in again], abs=1e-5)
    # the first `depth` dogs of the whole vector are re-ranked, however few are asked for
    first = await nearest_dogs(idx, query, 1, None, "mean", judged=RERANKED)
    assert [m.dog.id for m in first] == ["itself"]
    shallow = await nearest_dogs(idx, query, 1, None, "mean", judged=JudgedPart(VIT, PART.scale, Rerank(1.0, 0.5, 1)))
    assert [m.dog.id for m in shallow] == ["look-alike"]


def test_the_rerank_score_caps_the_rest_and_gives_an_identical_dog_one():
    assert float(RERANK.scores(1.0, 1.0)) == pytest.approx(1.0)
    assert float(RERANK.scores(0.8, 0.9)) == float(RERANK.scores(0.8, 0.5)) > float(RERANK.scores(0.8, 0.2))
    v = fused([1, 0, 0, 0, 0, 0], [0.6, 0.8, 0])
    rest = RERANKED.rest_queries(v[None, :])[0]
    assert not rest[:VIT].any() and float(rest @ v) * RERANKED.rest_scale == pytest.approx(1.0, abs=1e-6)
    whole = np.array([[-np.inf, 0.9, 0.5, 0.4], [0.9, -np.inf, 0.3, 0.2]])
    part = np.array([[1.0, 0.1, 0.9, 0.95], [0.2, 1.0, 0.9, 0.1]])
    rest = np.ones_like(part)
    out = Rerank(1.0, 0.5, 2).searched(whole, part, rest)
    # row 0: its first two by `whole` (columns 1, 2) re-ranked (2 before 1), then column 3 by `whole`, itself last
    assert list(np.argsort(-out[0], kind="stable")) == [2, 1, 3, 0]
    assert list(np.argsort(-out[1], kind="stable")) == [2, 0, 3, 1]


def test_a_calibration_s_part_may_carry_a_reranking_and_a_bad_one_is_refused():
    part = judged_part({"dims": VIT, "scale": PART.scale, "rerank": {"weight": 0.75, "cap": 0.4, "depth": 100}})
    assert part.rerank == Rerank(0.75, 0.4, 100) and judged_part({"dims": VIT, "scale": 1.2}).rerank is None
    for weight, cap, depth in ((0.0, 0.4, 100), (0.75, 0.0, 100), (0.75, 1.5, 100), (0.75, 0.4, 0)):
        with pytest.raises(ValueError):
            Rerank(weight, cap, depth)
    with pytest.raises(ValueError, match="scale > 1"):  # a part that is the whole vector has no rest to read
        JudgedPart(VIT, 1.0, RERANK)


@pytest.mark.parametrize("expansion", [None, Expansion(2)], ids=["plain", "expanded"])
async def test_a_reranked_search_ranks_as_the_evaluation_says_with_or_without_query_expansion(index, expansion):
    # twenty photos of made-up dogs; photo 0 asks, the others are stored, each its own dog. The evaluation's order
    # (eval/retrieval.py: JudgedPart.searched over the expanded queries) must be the search's, and an expanded search
    # re-ranks by its expanded query's part and rest, each dog still scored by the plain query's re-ranking
    edge, idx = index
    rng = np.random.default_rng(7)
    photos = np.stack([fused(rng.normal(size=VIT) + [3, 0, 0, 0, 0, 0], rng.normal(size=BREEDS) + [1, 0, 0])
                       for _ in range(20)])
    for n, v in enumerate(photos[1:], start=1):
        put(edge, f"dog-{n:02d}", v)
    judged = JudgedPart(VIT, PART.scale, Rerank(1.0, 0.5, 19))
    queries = photos if expansion is None else expanded_queries(photos, expansion)
    whole = queries @ photos.T
    np.fill_diagonal(whole, -np.inf)
    expected = np.argsort(-judged.searched(photos, whole, queries)[0], kind="stable")[:19]

    found = await nearest_dogs(idx, photos[:1], 19, None, "mean", expansion, judged)
    assert [m.dog.id for m in found] == [f"dog-{n:02d}" for n in expected]
    plain = await nearest_dogs(idx, photos[:1], 19, None, "mean", judged=judged)
    shown = {m.dog.id: m.score for m in plain}  # the plain query's re-ranking scores, whatever the order
    assert [m.score for m in found] == pytest.approx([shown[m.dog.id] for m in found], abs=1e-5)
    if expansion is not None:
        assert [m.dog.id for m in found] != [m.dog.id for m in plain]  # the expansion does reorder these dogs


async def test_an_expanded_reranked_search_of_several_photos_takes_each_dog_s_best_by_max(index):
    # two query photos under "max": each photo expanded by its own two nearest, a dog's part and rest cosines the
    # best over the expanded photos, re-ranked by those; each dog still scored by the plain photos' re-ranking
    edge, idx = index
    rng = np.random.default_rng(11)
    stored = np.stack([fused(rng.normal(size=VIT) + [3, 0, 0, 0, 0, 0], rng.normal(size=BREEDS) + [1, 0, 0])
                       for _ in range(16)])
    for n, v in enumerate(stored):
        put(edge, f"dog-{n:02d}", v)
    query = np.stack([fused(rng.normal(size=VIT) + [3, 0, 0, 0, 0, 0], rng.normal(size=BREEDS) + [1, 0, 0])
                      for _ in range(2)])
    rerank = Rerank(1.0, 0.5, 16)
    judged = JudgedPart(VIT, PART.scale, rerank)

    def best(asked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # per dog: the best part and rest cosines
        return ((judged.queries(asked) @ judged.queries(stored).T).max(axis=0),
                (judged.rest_queries(asked) @ judged.rest_queries(stored).T).max(axis=0))

    expanded = np.stack([expand(q, stored[np.argsort(-(stored @ q))[:2]], np.sort(stored @ q)[::-1][:2], 0.0)
                         for q in query])
    expected = np.argsort(-rerank.scores(*best(expanded)), kind="stable")
    found = await nearest_dogs(idx, query, 16, None, "max", Expansion(2), judged)
    assert [m.dog.id for m in found] == [f"dog-{n:02d}" for n in expected]
    shown = rerank.scores(*best(query))
    assert [m.score for m in found] == pytest.approx([shown[int(m.dog.id[4:])] for m in found], abs=1e-5)
    assert list(expected) != list(np.argsort(-shown, kind="stable"))  # the expansion does reorder these dogs
