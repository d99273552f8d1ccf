"""Query expansion (gallery/expansion.py): the math on vectors small enough to check by hand, the promise that the
first result stays with two neighbours or fewer, and the setting reaching the gateway's searches."""
from __future__ import annotations

import numpy as np
import pytest

from dogsearch.eval.retrieval import retrieval_metrics
from dogsearch.gallery.expansion import Expansion, expand, expanded_queries
from dogsearch.services.gateway.settings import GatewaySettings
from tests.fakes import fake_all_in_one, serving
from tests.images import solid


def at(*degrees: float) -> np.ndarray:
    angles = np.radians(degrees)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def expanded_similarities(photos: np.ndarray, expansion: Expansion) -> np.ndarray:
    """Row i: the cosines of photo i's expanded query (leave-one-out) with every photo."""
    return expanded_queries(photos, expansion) @ photos.T


def test_the_nearest_photo_pulls_the_query_towards_its_breed():
    # the query (0°, A) is nearest to an A at 10°; a B at -25° is nearer than the A at 30°, until the query moves
    # half-way to its neighbour: then the A at 30° comes before the B
    photos, labels = at(0, 10, -25, 30, -60), ["A", "A", "B", "A", "B"]
    plain = photos @ photos[0]
    assert list(np.argsort(-plain)[1:]) == [1, 2, 3, 4]
    moved = expanded_similarities(photos, Expansion(1, 0.0))[0]
    assert list(np.argsort(-moved)[1:]) == [1, 3, 2, 4]
    assert retrieval_metrics(photos, labels, expansion=Expansion(1))["map"] > retrieval_metrics(photos, labels)["map"]


def test_neighbours_weigh_their_cosine_to_the_power_and_those_pointing_away_nothing():
    query, near = at(0)[0], at(60, 120)
    scores = near @ query  # 0.5 and -0.5
    expected = query + 0.5 ** 2 * near[0]
    assert expand(query, near, scores, 2.0) == pytest.approx(expected / np.linalg.norm(expected), abs=1e-6)
    alike = query + near[0]  # power 0: every neighbour pointing the query's way weighs 1, the other still nothing
    assert expand(query, near, scores, 0.0) == pytest.approx(alike / np.linalg.norm(alike), abs=1e-6)
    assert np.linalg.norm(expand(query, near[1:], scores[1:], 1.0)) == pytest.approx(1.0)
    assert expand(query, near[1:], scores[1:], 1.0) == pytest.approx(query)


def test_a_photo_is_not_its_own_neighbour():
    photos = at(0, 0.5, 40, 41)
    moved = expanded_similarities(photos, Expansion(1, 1.0))
    towards = photos[0] + float(photos[1] @ photos[0]) * photos[1]  # the other photo, not itself (cosine 1)
    assert moved[0] == pytest.approx(photos @ (towards / np.linalg.norm(towards)), abs=1e-6)


@pytest.mark.parametrize("neighbours", [1, 2])
def test_with_two_neighbours_or_fewer_the_first_result_never_changes(neighbours):
    rng = np.random.default_rng(3)
    changed_with_five = 0
    for _ in range(40):
        centres = rng.normal(size=(6, 16))
        photos = np.concatenate([c + rng.normal(size=(8, 16)) * 0.8 for c in centres]).astype(np.float32)
        photos /= np.linalg.norm(photos, axis=1, keepdims=True)
        plain, sims = photos @ photos.T, expanded_similarities(photos, Expansion(neighbours, 1.0))
        np.fill_diagonal(plain, -np.inf)
        np.fill_diagonal(sims, -np.inf)
        assert (sims.argmax(axis=1) == plain.argmax(axis=1)).all()
        wide = expanded_similarities(photos, Expansion(5, 1.0))
        np.fill_diagonal(wide, -np.inf)
        changed_with_five += int((wide.argmax(axis=1) != plain.argmax(axis=1)).sum())
    assert changed_with_five > 0  # more neighbours may change it: the promise is of two


@pytest.mark.parametrize("bad", [dict(neighbours=-1), dict(neighbours=True), dict(neighbours=1.5),
                                 dict(neighbours=2, power=-1.0), dict(neighbours=2, power=float("nan"))])
def test_a_bad_expansion_is_refused(bad):
    with pytest.raises(ValueError):
        Expansion(**bad)


def test_the_gateway_setting_fails_fast_and_is_off_by_default(monkeypatch):
    assert GatewaySettings().expansion == Expansion(0)
    monkeypatch.setenv("DOGSEARCH_GATEWAY_QUERY_EXPANSION", "11")
    with pytest.raises(ValueError, match="query_expansion"):
        GatewaySettings()
    monkeypatch.setenv("DOGSEARCH_GATEWAY_QUERY_EXPANSION", "2")
    monkeypatch.setenv("DOGSEARCH_GATEWAY_QUERY_EXPANSION_POWER", "-1")
    with pytest.raises(ValueError, match="query_expansion_power"):
        GatewaySettings()


async def test_a_search_with_the_setting_ranks_by_the_expanded_query_and_scores_by_the_plain_one(tmp_path):
    # the query is red and the nearest dog a dark red; to the fake model's eye a tan is nearer to red than a navy is,
    # but the navy is nearer to the dark red: expanded towards the dark red, the navy comes before the tan. The scores
    # shown stay the photo's own cosines, and with the setting off the order is the plain one.
    colours = {"dark red": (170, 20, 20), "tan": (217, 163, 130), "navy": (12, 21, 96)}
    query = solid((210, 30, 30))
    orders = {}
    for n in (0, 1):
        app = fake_all_in_one(tmp_path / str(n), gateway_options={"query_expansion": n, "query_expansion_power": 0})
        async with serving(app) as client:
            ids = {(await client.post("/v1/dogs", files={"image": ("p.jpg", solid(rgb))})).json()["id"]: name
                   for name, rgb in colours.items()}
            gallery = app.state.parts.gallery
            _, vectors = await gallery.embedder.embed([query, *(solid(rgb) for rgb in colours.values())])
            cosines = dict(zip(colours, np.asarray(vectors[1:]) @ np.asarray(vectors[0]), strict=True))
            results = (await client.post("/v1/search", files={"image": ("q.jpg", query)},
                                         data={"k": "3"})).json()["results"]
            orders[n] = [ids[r["id"]] for r in results]
            assert [r["score"] for r in results] == pytest.approx([cosines[ids[r["id"]]] for r in results], abs=1e-4)
    assert orders == {0: ["dark red", "tan", "navy"], 1: ["dark red", "navy", "tan"]}
