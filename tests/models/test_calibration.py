"""A model's calibration file (dogsearch/models/calibration.py): checksum, the vectors it belongs to, the prior."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dogsearch.models import calibration as cal
from dogsearch.models.calibration import Calibration, CalibrationError

VECTORS = "toy-model@dogcrop-m0.3"


def write(models_dir, calibration: Calibration, model: str = "toy-model"):
    path = models_dir / model / cal.FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration.to_json()))
    return path


ISO = Calibration(VECTORS, "isotonic", {"x": [0.2, 0.5, 0.8], "y": [0.0, 0.5, 1.0]}, 0.5, {"command": "test"})


def test_a_written_calibration_is_found_for_its_vectors_only(tmp_path):
    write(tmp_path, ISO)
    found = cal.find(VECTORS, tmp_path)
    assert found == ISO and found.extra == {"command": "test"}
    assert cal.find("toy-model", tmp_path) is None  # whole-photo vectors: another space
    assert cal.find("toy-model@dogcrop-m0.1", tmp_path) is None  # another margin
    assert cal.find("other-model@dogcrop-m0.3", tmp_path) is None  # no file


def test_a_changed_file_fails_its_checksum_and_is_not_used(tmp_path):
    path = write(tmp_path, ISO)
    data = json.loads(path.read_text())
    data["params"]["y"] = [0.0, 0.9, 1.0]
    path.write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="checksum"):
        cal.load(path)
    assert cal.find(VECTORS, tmp_path) is None


def test_a_part_survives_the_file_and_a_bad_one_is_refused(tmp_path):
    judged = Calibration(VECTORS, "isotonic", ISO.params, 0.5, part={"dims": 384, "scale": 1.0198})
    write(tmp_path, judged)
    assert cal.find(VECTORS, tmp_path) == judged and cal.find(VECTORS, tmp_path).part["dims"] == 384
    assert ISO.part is None and "part" not in ISO.to_json()
    reranking = {"dims": 384, "scale": 1.0198, "rerank": {"weight": 0.75, "cap": 0.4, "depth": 100}}
    write(tmp_path, Calibration(VECTORS, "isotonic", ISO.params, 0.5, part=reranking))
    assert cal.find(VECTORS, tmp_path).part == reranking
    rerank = reranking["rerank"]
    for part in ({"dims": 0, "scale": 1.1}, {"dims": 384, "scale": 0.9}, {"dims": 384},
                 {"dims": 384, "scale": math.inf},
                 {**reranking, "rerank": {**rerank, "weight": 0}}, {**reranking, "rerank": {**rerank, "cap": 1.5}},
                 {**reranking, "rerank": {**rerank, "depth": 0}}, {**reranking, "scale": 1.0},
                 {**reranking, "rerank": {"weight": 0.75}}):
        bad = Calibration(VECTORS, "isotonic", ISO.params, 0.5, part=part)
        with pytest.raises(CalibrationError):
            cal.load(write(tmp_path, bad))


def test_knots_that_fall_are_refused(tmp_path):
    bad = Calibration(VECTORS, "isotonic", {"x": [0.2, 0.5], "y": [0.6, 0.4]}, 0.5)
    with pytest.raises(CalibrationError, match="non-decreasing"):
        cal.load(write(tmp_path, bad))


def test_probabilities_interpolate_stay_off_0_and_1_and_follow_the_prior():
    assert ISO.probability(0.5) == pytest.approx(0.5)
    assert ISO.probability(0.65) == pytest.approx(0.75)
    assert ISO.probability(-1.0) == cal.P_FLOOR and ISO.probability(1.0) == cal.P_CEIL
    # a prior of 0.2 turns odds 3:1 (p 0.75 at 0.5) into 3 x 1/4 = 0.75:1
    assert ISO.probability(0.65, prior=0.2) == pytest.approx(0.75 / 1.75)
    platt = Calibration(VECTORS, "platt", {"a": 10.0, "b": -5.0}, 0.5)
    assert platt.probability(0.5) == pytest.approx(0.5)
    assert platt.probability(0.6) > platt.probability(0.55) > 0.5


@pytest.mark.parametrize(("p", "expected"), [(0.95, "likely"), (0.9, "likely"), (0.89, "possible"),
                                             (0.5, "possible"), (0.49, "unlikely"), (0.0, "unlikely")])
def test_verdict_thresholds(p, expected):
    assert cal.verdict(p, possible=0.5, likely=0.9) == expected


def test_the_shipped_default_model_has_a_calibration_for_its_dog_crops():
    from dogsearch.models.registry import DEFAULT_MODEL
    from dogsearch.services.embedder.dogs import crop_model_id

    found = cal.find(crop_model_id(DEFAULT_MODEL))
    assert found is not None, "models/<default>/calibration.json is missing or fails its checksum"
    assert found.prior == 0.5 and found.method in cal.METHODS
    assert found.probability(0.95) > 0.9 > 0.1 > found.probability(0.0)


RANKED = Calibration(VECTORS, "isotonic", {"x": [0.2, 0.5, 0.8], "y": [0.0, 0.5, 1.0]}, 0.5, first={"a": 100.0,
                                                                                                    "b": -3.0})


def test_a_first_result_that_does_not_stand_out_from_the_next_dog_is_not_likely():
    # 0.8 scores p 0.999 as a pair; 0.1 ahead of the next dog it keeps that, 0.01 ahead it reads as a toss-up at most
    clear = RANKED.results([0.8, 0.7, 0.3])
    assert clear[0] == pytest.approx(RANKED.probability(0.8)) and clear[0] > 0.99
    assert clear[1] < 0.01  # a result behind another dog reads as unlikely: each dog is one result
    close = RANKED.results([0.8, 0.79])
    assert close[0] == pytest.approx(1 / (1 + np.exp(-(100 * 0.01 - 3))), abs=1e-6) and close[0] < 0.2
    assert close[1] == pytest.approx(1 / (1 + np.exp(-(100 * -0.01 - 3))), abs=1e-6)  # 0.01 behind: lower still
    tie = RANKED.results([0.8, 0.8, 0.5])
    assert tie[0] == tie[1] == pytest.approx(1 / (1 + np.exp(3)), abs=1e-6)  # neither stands out
    # the gap is taken from the best score, whatever order the results come in (a re-ranked list)
    assert RANKED.results([0.79, 0.8])[::-1] == pytest.approx(close)


def test_a_list_of_one_or_a_file_without_first_is_read_by_pairs_alone():
    assert RANKED.results([0.8]) == pytest.approx([RANKED.probability(0.8)])
    assert ISO.results([0.8, 0.79]) == pytest.approx(ISO.probabilities([0.8, 0.79]))


def test_leading_judges_scores_against_their_own_best_other_dog_as_results_does():
    """What a watch asks (each new dog against the best other dog its search finds): the same as the first result
    of a list of the two; no other dog (NaN): the pair alone."""
    got = RANKED.leading([0.8, 0.8, 0.8], [0.7, 0.79, np.nan], prior=0.2)
    assert got[0] == pytest.approx(RANKED.results([0.8, 0.7], prior=0.2)[0])
    assert got[1] == pytest.approx(RANKED.results([0.8, 0.79], prior=0.2)[0])
    assert got[2] == pytest.approx(RANKED.probability(0.8, prior=0.2))
    assert ISO.leading([0.8], [0.79]) == pytest.approx(ISO.probabilities([0.8]))  # no lead curve: pairs alone


def cosines(*rows) -> np.ndarray:
    """A symmetric matrix of the results' own cosines from its upper triangle, row by row."""
    n = len(rows) + 1
    out = np.eye(n)
    for i, row in enumerate(rows):
        out[i, i + 1:] = out[i + 1:, i] = row
    return out


def test_one_dog_stored_twice_is_no_rival_of_itself():
    """Two reports of one dog (0.8 to each other, far from the rest), both found by the query: judged against each
    other neither stands out; judged by who else they are, both read as the dog. The third, behind them, does not."""
    scores = [0.8, 0.79, 0.5]
    both = cosines([0.8, 0.4], [0.4])
    before, now = RANKED.results(scores), RANKED.results(scores, alike=both)
    assert before[0] < 0.2 and before[1] < 0.05
    same = RANKED.one_dog(both)[0, 1]  # as a search with one's photo among them would judge the other: far ahead
    assert same == pytest.approx(RANKED.probability(0.8))
    lead = RANKED.leading([0.8, 0.79], [0.5, 0.5])
    assert now[:2] == pytest.approx(same * lead + (1 - same) * before[:2])
    assert now[0] > 0.99 and now[1] > 0.9 and now[2] == pytest.approx(before[2])  # both likely


def test_look_alikes_hold_each_other_back_as_before():
    """Three dogs of one look (0.72 to each other): none stands out as the others' dog, so each is still the
    others' rival; results whose own cosines are not known are rivals too."""
    scores = [0.8, 0.79, 0.785]
    alike = cosines([0.72, 0.72], [0.72])
    assert RANKED.one_dog(alike).max() < 0.05
    assert RANKED.results(scores, alike=alike) == pytest.approx(RANKED.results(scores), abs=0.01)
    unknown = np.full((3, 3), np.nan)
    assert RANKED.results(scores, alike=unknown) == pytest.approx(RANKED.results(scores))
    far = cosines([0.1, 0.1], [0.1])  # pairs the map reads at its floor: exactly as before
    assert RANKED.results(scores, alike=far).tolist() == RANKED.results(scores).tolist()


def test_whether_two_results_are_one_dog_is_one_answer_for_both():
    """A result near two others is not sure which is its dog: the pair reads the lower of its two views."""
    alike = cosines([0.8, 0.79], [0.6])
    same = RANKED.one_dog(alike)
    assert (same == same.T).all() and not same.diagonal().any()
    from_0 = RANKED.leading([0.8], [0.79])[0]  # 0's view of 1: 0.01 ahead of 2
    from_1 = RANKED.leading([0.8], [0.6])[0]  # 1's view of 0: far ahead
    assert same[0, 1] == pytest.approx(min(from_0, from_1)) and from_0 < 0.2 < 0.99 < from_1


def test_the_first_result_s_curve_follows_the_prior_and_survives_the_file(tmp_path):
    close = RANKED.results([0.8, 0.79])[0]
    odds = close / (1 - close) * 0.25
    assert RANKED.results([0.8, 0.79], prior=0.2)[0] == pytest.approx(odds / (1 + odds))
    write(tmp_path, RANKED)
    assert cal.find(VECTORS, tmp_path).first == {"a": 100.0, "b": -3.0}
    backwards = Calibration(VECTORS, "platt", {"a": 10.0, "b": -5.0}, 0.5, first={"a": -1.0, "b": 0.0})
    with pytest.raises(CalibrationError, match="a > 0"):
        cal.load(write(tmp_path, backwards))
