"""Is this the same dog? `same_dog` and `verdict` on every result, `best_verdict` and a plain message on the answer,
from the calibration of the collection's vectors and the gateway's thresholds."""
from __future__ import annotations

import json
from dataclasses import replace
from hashlib import sha256

import httpx
import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY
from pydantic import ValidationError

from dogsearch.core.judged import Rerank
from dogsearch.gallery.judged import SHOWN
from dogsearch.models.calibration import FILE_NAME, Calibration
from dogsearch.services.gateway.samedog import NO_DOGS, NO_LIKELY, ONLY_POSSIBLE
from dogsearch.services.gateway.settings import GatewaySettings
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.gateway.helpers import BLUE, DARK_RED, GREEN, RED, add, search
from tests.images import halves, solid

# the fake model's vectors: the same picture scores 1.0, red against dark red about 0.9, other colours below 0
CALIBRATION = Calibration("test-color-grid", "isotonic", {"x": [0.0, 0.95, 0.999], "y": [0.0, 0.6, 1.0]}, 0.5)


@pytest.fixture
async def calibrated(tmp_path, fake_model):
    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(CALIBRATION.to_json()))
    app = fake_all_in_one(tmp_path / "data", fake_model, gateway_options={"calibration_dir": models})
    async with serving(app) as client:
        yield client


async def test_results_carry_a_probability_and_a_verdict(calibrated):
    red = (await add(calibrated, solid(RED))).json()["id"]
    await add(calibrated, solid(BLUE))
    body = (await search(calibrated, solid(RED, fmt="PNG"), k=2)).json()  # not the stored bytes: the test below
    first, second = body["results"]
    assert first["id"] == red and first["same_dog"] > 0.99 and first["verdict"] == "likely"
    assert second["same_dog"] < 0.01 and second["verdict"] == "unlikely"
    assert first["same_dog"] == pytest.approx(CALIBRATION.probability(first["score"]), abs=1e-4)
    assert body["best_verdict"] == "likely" and body["message"] is None
    similar = (await calibrated.get(f"/v1/dogs/{red}/similar")).json()
    assert similar["results"][0]["verdict"] == "unlikely" and similar["best_verdict"] == "unlikely"
    assert similar["message"] == NO_LIKELY


async def test_a_search_where_nothing_is_likely_says_so(calibrated):
    await add(calibrated, solid(RED))
    await add(calibrated, solid(GREEN))
    body = (await search(calibrated, solid(DARK_RED), k=2)).json()
    best = body["results"][0]
    assert 0.5 <= best["same_dog"] < 0.9 and best["verdict"] == "possible"
    assert body["best_verdict"] == "possible" and body["message"] == ONLY_POSSIBLE  # worth a look, and said so
    # the pose path answers alike
    posed = (await search(calibrated, solid(DARK_RED), k=2, pose="true")).json()
    assert posed["best_verdict"] == "possible" and posed["results"][0]["same_dog"] == best["same_dog"]


async def test_an_empty_gallery_has_no_likely_match(calibrated):
    body = (await search(calibrated, solid(RED))).json()
    assert body["results"] == [] and body["best_verdict"] == "unlikely" and body["message"] == NO_DOGS


# A map as steep as a real one: the pictures below that differ in half their cells (0.937 to each other) are two
# dogs; a picture and one that shares half its cells (0.969) reads likely as a pair.
STEEP = {"x": [0.0, 0.94, 0.95, 0.999], "y": [0.0, 0.0, 0.9, 1.0]}
# two look-alikes of red: each 0.969 from it, 0.937 from each other
LOOK_ALIKES = (halves(RED, DARK_RED), halves(DARK_RED, RED))


def calibrated_app(tmp_path, model, calibration: Calibration):
    """The app with `calibration` as the model's calibration file."""
    models = tmp_path / "models"
    (models / model.model_id).mkdir(parents=True)
    (models / model.model_id / FILE_NAME).write_text(json.dumps(calibration.to_json()))
    return fake_all_in_one(tmp_path / "data", model, gateway_options={"calibration_dir": models})


def ranked_app(tmp_path, model):
    return calibrated_app(tmp_path, model, Calibration(model.model_id, "isotonic", STEEP, 0.5,
                                                       first={"a": 100.0, "b": -3.0}))


async def test_a_first_result_that_does_not_stand_out_from_the_next_dog_is_not_likely(tmp_path, fake_model):
    """Two look-alikes (a red and dark red dog, and one of the same colours the other way round: another dog): the
    query's first result scores as high as a pair of one dog's photos, but so does the next dog, so it is not
    likely."""
    query = solid(RED, size=(72, 54))
    async with serving(ranked_app(tmp_path, fake_model)) as client:
        await add(client, LOOK_ALIKES[0])
        await add(client, solid(BLUE))
        alone = (await search(client, query, k=2)).json()
        await add(client, LOOK_ALIKES[1])
        twins = (await search(client, query, k=3)).json()
        one = (await search(client, query, k=1)).json()
        red = (await add(client, solid(RED))).json()["id"]  # a third: two look-alikes for it
        similar = (await client.get(f"/v1/dogs/{red}/similar", params={"k": 1})).json()
    assert alone["results"][0]["verdict"] == "likely" and alone["best_verdict"] == "likely"
    # one result asked for: the search still looks at the next dog to judge it, and shows one
    assert [r["same_dog"] for r in one["results"]] == [twins["results"][0]["same_dog"]]
    assert one["best_verdict"] == twins["best_verdict"] and len(similar["results"]) == 1
    assert similar["results"][0]["verdict"] == "unlikely" and similar["message"] == NO_LIKELY
    first, second = twins["results"][:2]
    assert first["score"] - second["score"] < 0.01 and first["same_dog"] < 0.2
    assert second["same_dog"] <= first["same_dog"] and second["verdict"] == "unlikely"
    assert twins["best_verdict"] != "likely"
    assert twins["message"] == (ONLY_POSSIBLE if twins["best_verdict"] == "possible" else NO_LIKELY)


async def test_one_dog_stored_twice_reads_as_the_dog_in_both_its_reports(tmp_path, fake_model):
    """An owner's "lost" report and a finder's "found" one of the same dog are two dogs in the gallery: a search
    finds both first, a tie no lead breaks, but the two are as alike as one dog's photos and unlike the rest, so
    neither is the other's rival: both read likely, in a search, with poses, and in "more like this" of a third
    report."""
    query = solid(RED, size=(72, 54))
    async with serving(ranked_app(tmp_path, fake_model)) as client:
        lost = (await add(client, solid(RED), status="lost")).json()["id"]
        found = (await add(client, solid(RED, size=(80, 60)), status="found")).json()["id"]
        await add(client, solid(BLUE))
        body = (await search(client, query, k=3)).json()
        posed = (await search(client, query, k=3, pose="true")).json()
        third = (await add(client, solid(RED, size=(90, 70)), status="sighted")).json()["id"]
        similar = (await client.get(f"/v1/dogs/{third}/similar", params={"k": 2, "counterparts": "false"})).json()
    for answer in (body, posed):
        first, second, blue = answer["results"]
        assert {first["id"], second["id"]} == {lost, found} and first["score"] == second["score"]
        assert first["verdict"] == second["verdict"] == "likely" and blue["verdict"] == "unlikely"
        assert answer["best_verdict"] == "likely" and answer["message"] is None
    assert {r["id"] for r in similar["results"]} == {lost, found}
    assert [r["verdict"] for r in similar["results"]] == ["likely", "likely"]


class LookupsFail(httpx.AsyncBaseTransport):
    """The search service's transport, the service gone once the ranking's queries are answered: past the first
    `passing` lookups of points by id ("more like this" reads its dog's vectors first), each (the shown entries'
    vectors) fails as a dead service's connection does, or answers `status`."""

    def __init__(self, inner: httpx.AsyncBaseTransport, status: int | None = None) -> None:
        self.inner, self.status, self.passing, self.failed = inner, status, 0, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/points/lookup" or self.passing:
            self.passing -= request.url.path == "/v1/points/lookup"
            return await self.inner.handle_async_request(request)
        self.failed += 1
        if self.status is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(self.status, json={"detail": "no answer", "code": "error"})


@pytest.mark.parametrize("status", [None, 503, 504])
async def test_a_search_whose_lookup_of_its_results_fails_answers_with_the_verdicts_read_without_it(
        tmp_path, fake_model, caplog, status):
    """The search service fails between the ranking and the lookup of the shown entries' vectors (whether two
    results are one dog stored twice): the ranking in hand is answered, its verdicts read as before that lookup was
    asked for (the two reports of one dog hold each other back), the answer says so, the log warns and a metric
    counts it; in a search, with poses, and in "more like this"."""
    query = solid(RED, size=(72, 54))
    app = ranked_app(tmp_path, fake_model)
    async with serving(app) as client:
        lost = (await add(client, solid(RED), status="lost")).json()["id"]
        found = (await add(client, solid(RED, size=(80, 60)), status="found")).json()["id"]
        blue = (await add(client, solid(BLUE))).json()["id"]
        checked = (await search(client, query, k=3)).json()
        http = app.state.parts.gallery.index._http
        http._transport = transport = LookupsFail(http._transport, status)
        before = REGISTRY.get_sample_value("dogsearch_verdicts_unchecked_total")
        answers = [await search(client, query, k=3), await search(client, query, k=3, pose="true")]
        transport.passing = 1
        answers.append(await client.get(f"/v1/dogs/{blue}/similar", params={"k": 2}))
        after = REGISTRY.get_sample_value("dogsearch_verdicts_unchecked_total")
    assert checked["verdicts_unchecked"] is False and checked["best_verdict"] == "likely"
    assert [r["verdict"] for r in checked["results"]] == ["likely", "likely", "unlikely"]
    assert [a.status_code for a in answers] == [200, 200, 200] and transport.failed == 3
    calibration = Calibration(fake_model.model_id, "isotonic", STEEP, 0.5, first={"a": 100.0, "b": -3.0})
    for body in (a.json() for a in answers):
        results = body["results"]
        assert body["verdicts_unchecked"] is True and {r["id"] for r in results[:2]} == {lost, found}
        expected = calibration.results([r["score"] for r in results])
        assert [r["same_dog"] for r in results] == pytest.approx(expected.tolist(), abs=1e-3)
        assert "likely" not in {r["verdict"] for r in results} and body["best_verdict"] != "likely"
    assert [r["id"] for r in answers[0].json()["results"]] == [r["id"] for r in checked["results"]]
    assert after - before == 3
    warned = [r for r in caplog.records if r.getMessage() == "verdicts read without the results' own cosines"]
    assert len(warned) == 3 and {r.levelname for r in warned} == {"WARNING"} and warned[0].source == "search"


async def test_the_querys_own_photo_stored_is_the_same_dog_whatever_its_look_alikes(tmp_path, fake_model):
    """The photo searched with is stored (a user checks their own upload; one dog boxed twice, or littermates side
    by side, make look-alikes that score as high): its own entry is certain, the look-alikes trail it. A copy of it
    in other bytes is no more than the calibration says."""
    async with serving(ranked_app(tmp_path, fake_model)) as client:
        red = (await add(client, solid(RED))).json()["id"]
        twins = {(await add(client, photo)).json()["id"] for photo in LOOK_ALIKES}
        own = (await search(client, solid(RED), k=3)).json()
        posed = (await search(client, solid(RED), k=3, pose="true")).json()
        copy = (await search(client, solid(RED, fmt="PNG"), k=3)).json()
    for body in (own, posed):
        assert [(r["id"], r["same_dog"], r["verdict"]) for r in body["results"][:1]] == [(red, 1.0, "likely")]
        assert {r["id"] for r in body["results"][1:]} == twins
        assert {r["verdict"] for r in body["results"][1:]} == {"unlikely"}
        assert body["best_verdict"] == "likely" and body["message"] is None
    assert copy["results"][0]["id"] == red and copy["results"][0]["same_dog"] < 0.9
    assert copy["best_verdict"] != "likely"


async def test_the_thresholds_are_settings(tmp_path, fake_model):
    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(CALIBRATION.to_json()))
    app = fake_all_in_one(tmp_path / "data", fake_model, gateway_options={
        "calibration_dir": models, "same_dog_likely": 0.55, "same_dog_possible": 0.2})
    async with serving(app) as client:
        await add(client, solid(RED))
        body = (await search(client, solid(DARK_RED), k=1)).json()
    assert body["results"][0]["verdict"] == "likely" and body["best_verdict"] == "likely"


async def test_without_a_calibration_same_dog_is_null_and_no_verdict(gateway):
    await add(gateway, solid(RED))
    body = (await search(gateway, solid(RED))).json()
    assert body["results"][0]["same_dog"] is None and body["results"][0]["verdict"] is None
    assert body["best_verdict"] is None and body["message"] is None


@pytest.mark.parametrize("options", [{"same_dog_possible": 0.9, "same_dog_likely": 0.9},
                                     {"same_dog_possible": 0.95, "same_dog_likely": 0.9},
                                     {"same_dog_likely": 1.0}, {"same_dog_possible": 0.0},
                                     {"same_dog_prior": 0.0}])
def test_bad_thresholds_stop_the_gateway_at_start(options):
    with pytest.raises(ValidationError):
        GatewaySettings(**options)


def test_thresholds_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOGSEARCH_GATEWAY_SAME_DOG_LIKELY", "0.8")
    monkeypatch.setenv("DOGSEARCH_GATEWAY_SAME_DOG_POSSIBLE", "0.3")
    settings = GatewaySettings()
    assert (settings.same_dog_possible, settings.same_dog_likely) == (0.3, 0.8)


class FusedColorModel(ColorGridModel):
    """A fusion in miniature: the colour grid's unit vector (its "ViT" part, 48-d) beside the square roots of a
    softmax of the photo's mean colour (its "breed" part, as a fusion's breed probabilities) weighing W, the whole
    normalised."""

    model_id, dim, W = "test-fused", 51, 0.5

    def embed(self, batch):
        grid = super().embed(batch)
        p = torch.softmax(8 * batch.reshape(len(batch), 3, -1).mean(dim=2), dim=1).numpy().astype(np.float32)
        return np.concatenate([grid, self.W * np.sqrt(p)], axis=1) / np.sqrt(1 + self.W ** 2)


async def test_a_fusion_s_verdicts_read_its_part_s_cosines_not_its_ranking_scores(tmp_path):
    """Ranked by the whole vector, judged by the ViT part with the base's map (core/judged.py): each result's
    same_dog is the map read at its part cosine (and its lead over the best other dog's), in a search and in "more
    like this"; matches without part cosines get no verdict rather than one read off the wrong score."""
    model = FusedColorModel()
    part = {"dims": 48, "scale": float(np.sqrt(1 + model.W ** 2))}
    judged = Calibration(model.model_id, "isotonic", CALIBRATION.params, 0.5, part=part)
    app = calibrated_app(tmp_path, model, judged)
    colours = {"red": solid(RED), "blue": solid(BLUE), "green": solid(GREEN)}
    async with serving(app) as client:
        ids = {(await add(client, photo)).json()["id"]: name for name, photo in colours.items()}
        body = (await search(client, solid(DARK_RED), k=3)).json()
        red = next(i for i, name in ids.items() if name == "red")
        similar = (await client.get(f"/v1/dogs/{red}/similar", params={"k": 2})).json()
        gallery, same_dog = app.state.parts.gallery, app.state.parts.same_dog
        _, vectors = await gallery.embedder.embed([solid(DARK_RED), *colours.values()])
        found = await gallery.search([solid(DARK_RED)], 3)
        unjudged = await same_dog.judge(model.model_id, [replace(m, judged=None) for m in found.matches])
    v = np.asarray(vectors)
    parts = v[:, :48] / np.linalg.norm(v[:, :48], axis=1, keepdims=True)
    cosines = dict(zip(colours, parts[1:] @ parts[0], strict=True))
    results = body["results"]
    assert [r["score"] for r in results] == pytest.approx(sorted((v[1:] @ v[0]).tolist(), reverse=True), abs=1e-4)
    read = [cosines[ids[r["id"]]] for r in results]
    assert abs(results[0]["score"] - read[0]) > 0.01  # the two scores differ: the test tells them apart
    assert [r["same_dog"] for r in results] == pytest.approx(judged.results(read).tolist(), abs=1e-4)
    assert results[0]["verdict"] == "possible"
    others = {name: cosines[name] for name in cosines if name != "red"}
    own = parts[1:] @ parts[1]  # "more like this" of the red dog: its photo is the query
    expected = judged.results([own[list(colours).index(ids[r["id"]])] for r in similar["results"]])
    assert set(others) == {ids[r["id"]] for r in similar["results"]}
    assert [r["same_dog"] for r in similar["results"]] == pytest.approx(expected.tolist(), abs=1e-4)
    assert unjudged.best_verdict is None and set(unjudged.verdicts) == {None}


async def test_the_results_own_cosines_are_of_the_part_a_fusion_is_judged_by(tmp_path):
    """Whether two results are one dog reads the cosine its verdicts read: a fusion's ViT part, not the whole
    vector; of the entries the search found them by; an entry gone since is not known (NaN), so a rival."""
    model = FusedColorModel()
    part = {"dims": 48, "scale": float(np.sqrt(1 + model.W ** 2))}
    judged = Calibration(model.model_id, "isotonic", CALIBRATION.params, 0.5, part=part)
    app = calibrated_app(tmp_path, model, judged)
    colours = [solid(RED), solid(DARK_RED), solid((220, 140, 20))]
    async with serving(app) as client:
        for photo in colours:
            await add(client, photo)
        gallery = app.state.parts.gallery
        found = (await gallery.search([solid(RED)], 3)).matches
        alike = await gallery.alike(found)
        _, vectors = await gallery.embedder.embed(colours)
        gone = found[2].dog
        await client.delete(f"/v1/dogs/{gone.id}")
        after = await gallery.alike(found)
    v = np.asarray(vectors, dtype=np.float64)
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    order = [next(i for i, c in enumerate(colours) if sha256(c).hexdigest() == m.dog.payload["sha256"])
             for m in found]
    vit, whole = unit(v[order, :48]), unit(v[order])
    assert alike == pytest.approx(vit @ vit.T, abs=1e-5)
    assert np.abs(alike - whole @ whole.T).max() > 0.01  # the test tells the two apart
    assert np.isnan(after[2]).all() and np.isnan(after[:, 2]).all()
    assert after[:2, :2] == pytest.approx(alike[:2, :2])


async def test_a_fusion_whose_part_reranks_answers_in_the_reranking_s_order_and_still_judges_by_the_part(tmp_path):
    """A calibration whose part re-ranks (core/judged.py): a search's results come in the order of the part's
    cosine plus the capped cosine of the rest, that score as `score`; same_dog still reads the part's cosine."""
    models, model = tmp_path / "models", FusedColorModel()
    (models / model.model_id).mkdir(parents=True)
    rerank = {"weight": 1.5, "cap": 0.5, "depth": 10}
    part = {"dims": 48, "scale": float(np.sqrt(1 + model.W ** 2)), "rerank": rerank}
    judged = Calibration(model.model_id, "isotonic", CALIBRATION.params, 0.5, part=part)
    (models / model.model_id / FILE_NAME).write_text(json.dumps(judged.to_json()))
    app = fake_all_in_one(tmp_path / "data", model, gateway_options={"calibration_dir": models})
    # amber: nearer the query by the whole vector, its "breed" part the query's; navy: nearer on the ViT part, its
    # breed part past the cap too, so the re-ranking puts it first of the two
    colours = {"red": solid(RED), "amber": solid((220, 140, 20)), "navy": solid((20, 20, 60)), "green": solid(GREEN)}
    async with serving(app) as client:
        ids = {(await add(client, photo)).json()["id"]: name for name, photo in colours.items()}
        body = (await search(client, solid((150, 40, 40)), k=4)).json()
        _, vectors = await app.state.parts.gallery.embedder.embed([solid((150, 40, 40)), *colours.values()])
    v = np.asarray(vectors, dtype=np.float64)
    unit = lambda rows: rows / np.linalg.norm(rows, axis=1, keepdims=True)  # noqa: E731
    vit, rest = unit(v[:, :48]), unit(v[:, 48:])
    by_name = {name: (float(vit[i + 1] @ vit[0]), float(rest[i + 1] @ rest[0])) for i, name in enumerate(colours)}
    expected = {name: float(Rerank(**rerank).scores(a, b)) for name, (a, b) in by_name.items()}
    results = body["results"]
    assert [ids[r["id"]] for r in results] == sorted(expected, key=lambda name: -expected[name])
    assert [r["score"] for r in results] == pytest.approx([expected[ids[r["id"]]] for r in results], abs=1e-4)
    whole = {name: float(unit(v)[i + 1] @ unit(v)[0]) for i, name in enumerate(colours)}
    assert [ids[r["id"]] for r in results] != sorted(whole, key=lambda name: -whole[name])  # the re-ranking moved one
    read = [by_name[ids[r["id"]]][0] for r in results]
    assert [r["same_dog"] for r in results] == pytest.approx(judged.results(read).tolist(), abs=1e-4)


async def test_a_search_asks_for_the_ten_dogs_its_verdicts_are_judged_against_however_few_it_shows(tmp_path,
                                                                                                  fake_model):
    """For a fusion any of the first ten dogs may score best on the part a verdict reads (core/judged.py): a
    search for one result is judged against the same ten as a search for ten, and shows one."""
    app = fake_all_in_one(tmp_path / "data", fake_model)
    asked = []
    async with serving(app) as client:
        gallery = app.state.parts.gallery
        search_dogs, similar_dogs = gallery.search, gallery.similar

        async def counting_search(images, k, *args, **kwargs):
            asked.append(k)
            return await search_dogs(images, k, *args, **kwargs)

        async def counting_similar(dog_id, k, *args, **kwargs):
            asked.append(k)
            return await similar_dogs(dog_id, k, *args, **kwargs)

        gallery.search, gallery.similar = counting_search, counting_similar
        red = (await add(client, solid(RED))).json()["id"]
        one = (await search(client, solid(RED), k=1)).json()
        similar = (await client.get(f"/v1/dogs/{red}/similar", params={"k": 1})).json()
        many = (await search(client, solid(RED), k=12)).json()
    assert asked == [SHOWN, SHOWN, 12]
    assert len(one["results"]) == 1 and similar["results"] == [] and len(many["results"]) == 1


async def test_a_photo_added_to_a_dog_says_how_likely_it_shows_that_dog(calibrated):
    """A shelter adds a photo to the wrong dog: the answer reads "unlikely" from the photo's closest other photo of
    the dog, where a photo of the same dog reads "likely"."""
    red = (await add(calibrated, solid(RED))).json()["id"]

    async def added(data: bytes):
        r = await calibrated.post(f"/v1/dogs/{red}/photos", files={"image": ("p.jpg", data)})
        assert r.status_code in (200, 201), r.text
        return r.json()["same_dog"], r.json()["verdict"]

    assert await added(solid(RED)) == (None, None)  # its own cover again: no other photo to compare it with
    same, verdict = await added(solid(RED, fmt="PNG"))
    assert same > 0.99 and verdict == "likely"
    same, verdict = await added(solid(DARK_RED))
    assert same == pytest.approx(CALIBRATION.probability(0.9), abs=0.15) and verdict != "unlikely"
    same, verdict = await added(solid(BLUE))  # another dog's photo by mistake
    assert same < 0.01 and verdict == "unlikely"


async def test_a_photo_added_to_a_fusion_s_dog_is_judged_by_the_part_s_cosine(tmp_path):
    models, model = tmp_path / "models", FusedColorModel()
    (models / model.model_id).mkdir(parents=True)
    judged = Calibration(model.model_id, "isotonic", CALIBRATION.params, 0.5,
                         part={"dims": 48, "scale": float(np.sqrt(1 + model.W ** 2))})
    (models / model.model_id / FILE_NAME).write_text(json.dumps(judged.to_json()))
    app = fake_all_in_one(tmp_path / "data", model, gateway_options={"calibration_dir": models})
    async with serving(app) as client:
        red = (await add(client, solid(RED))).json()["id"]
        r = await client.post(f"/v1/dogs/{red}/photos", files={"image": ("p.jpg", solid(DARK_RED))})
        _, vectors = await app.state.parts.gallery.embedder.embed([solid(RED), solid(DARK_RED)])
    v = np.asarray(vectors)
    whole, part = v[1] @ v[0], (v[1, :48] @ v[0, :48]) / np.linalg.norm(v[1, :48]) / np.linalg.norm(v[0, :48])
    assert abs(whole - part) > 0.005  # the test tells the two apart
    assert r.json()["same_dog"] == pytest.approx(judged.probability(part), abs=1e-3)


async def test_an_empty_answer_says_there_is_nothing_to_compare_without_a_calibration_too(tmp_path, fake_model):
    async with serving(fake_all_in_one(tmp_path / "data", fake_model)) as client:  # no calibration for these vectors
        body = (await search(client, solid(RED))).json()
    assert body["results"] == [] and body["message"] == NO_DOGS and body["best_verdict"] is None


async def test_a_photo_is_added_even_when_its_verdict_cannot_be_told(calibrated, monkeypatch):
    """The photo is stored before its verdict is read: a failure there (the search service gone that moment) leaves
    the add done, its verdict null."""
    from dogsearch.core.errors import Unavailable
    from dogsearch.gallery.gallery import Gallery

    red = (await add(calibrated, solid(RED))).json()["id"]

    async def gone(self, dog_id, entry):
        raise Unavailable("search: no answer")

    monkeypatch.setattr(Gallery, "likeness", gone)
    r = await calibrated.post(f"/v1/dogs/{red}/photos", files={"image": ("p.png", solid(RED, fmt="PNG"))})
    assert r.status_code == 201 and (r.json()["same_dog"], r.json()["verdict"]) == (None, None)
    assert len(r.json()["photos"]) == 2
