"""Same-dog verification figures and the score -> probability fits (dogsearch/eval/verification.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dogsearch.core.judged import Rerank
from dogsearch.eval import verification as ver
from dogsearch.eval.retrieval import multi_photo_recall
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def fixture_scores():
    """Cosine scores of 300 pairs of DogFaceNet validation dogs' photos (150 same dog, 150 not), as the default
    embedder scores them: a small real sample to fit on."""
    data = json.loads((FIXTURES / "same_dog_scores.json").read_text())
    return np.array(data["scores"]), np.array(data["same"], dtype=bool)


def test_pairs_are_every_unordered_pair_with_its_flag():
    emb = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float32)
    scores, same = ver.pair_scores(emb, ["a", "a", "b"])
    assert scores == pytest.approx([0.6, 0.0, 0.8])
    assert same.tolist() == [True, False, False]


def test_auc_eer_and_tmr_on_a_hand_computed_case():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    same = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    # positives beat 5, 5 and 4 of the 5 negatives: AUC 14/15
    assert ver.roc_auc(scores, same) == pytest.approx(14 / 15)
    # threshold 0.8: FMR 0, FNMR 1/3; 0.7: FMR 1/5, FNMR 1/3; 0.6: FMR 1/5, FNMR 0 -> they cross between
    assert 0 < ver.eer(scores, same) <= 1 / 3
    assert ver.tmr_at_fmr(scores, same, 0.0) == (pytest.approx(2 / 3), 0.8)
    assert ver.tmr_at_fmr(scores, same, 0.2) == (pytest.approx(1.0), 0.6)
    perfect = np.array([1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    assert ver.roc_auc(scores, perfect) == 1.0 and ver.eer(scores, perfect) == 0.0


def test_ties_count_half_in_the_auc():
    assert ver.roc_auc(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.5)


def test_ece_is_the_weighted_gap_per_bin():
    # bin of 0.1: 4 pairs, 1 same (0.25 vs 0.1); bin of 0.9: 4 pairs, 4 same (1.0 vs 0.9)
    p = np.array([0.1] * 4 + [0.9] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    assert ver.ece(p, y) == pytest.approx(0.5 * 0.15 + 0.5 * 0.1)
    assert ver.ece(np.array([0.25] * 4), np.array([1, 0, 0, 0], dtype=bool)) == pytest.approx(0.0)
    # weights move the bins' shares: the second bin alone
    assert ver.ece(p, y, np.array([0] * 4 + [1] * 4)) == pytest.approx(0.1)


def test_balanced_weights_give_each_class_and_group_an_equal_share():
    same = np.array([1, 0, 0, 0, 1, 1, 0], dtype=bool)
    groups = np.array([0, 0, 0, 0, 1, 1, 1])
    w = ver.balanced_weights(same, groups)
    assert w.sum() == pytest.approx(1.0)
    assert w[same].sum() == pytest.approx(0.5)
    assert w[(groups == 1) & same].sum() == pytest.approx(0.25)
    assert w[(groups == 0) & ~same].sum() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no same-dog"):
        ver.balanced_weights(np.array([0, 0, 1], dtype=bool), np.array([0, 0, 1]))


def test_a_set_of_breeds_shares_only_the_different_dog_half():
    same = np.array([1, 0, 0, 0, 0, 0], dtype=bool)
    groups = np.array([0, 0, 1, 1, 1, 1])  # group 1: pairs of other dogs of one breed
    w = ver.balanced_weights(same, groups, negative_only=[1])
    assert w[same].sum() == pytest.approx(0.5)  # all of it on group 0's one same-dog pair
    assert w[groups == 0][~same[groups == 0]].sum() == pytest.approx(0.25)
    assert w[groups == 1].sum() == pytest.approx(0.25) and np.allclose(w[groups == 1], 0.0625)


def test_pool_adjacent_violators_on_a_hand_case():
    # y = 1 0 | 1 1 | 0 ...: the first two pool to 0.5, the last three to 2/3
    x, y = ver.fit_isotonic(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array([1, 0, 1, 1, 0], dtype=bool))
    assert x == pytest.approx([1.5, 4.0])
    assert y == pytest.approx([0.5, 2 / 3])


def test_isotonic_and_platt_fits_are_monotone_bounded_and_calibrated(fixture_scores):
    scores, same = fixture_scores
    grid = np.linspace(-1, 1, 201)
    for method in ("isotonic", "platt"):
        f = ver.fit(method, scores, same)
        p = f(grid)
        assert np.all(np.diff(p) >= 0), method  # a higher score is never a lower probability
        assert p.min() > 0 and p.max() < 1, method  # never certain
        # the fit's own pairs: far better calibrated than the raw cosine read as a probability
        w = ver.balanced_weights(same)
        assert ver.ece(f(scores), same, w) < 0.1 < ver.ece(np.clip(scores, 0, 1), same, w), method
        assert f(np.array([scores[same].max()]))[0] > 0.9 and f(np.array([scores[~same].min()]))[0] < 0.1


def test_calibrate_fits_on_fit_dogs_and_measures_on_held_out_dogs(tmp_path):
    from dogsearch.eval.splits import identity_split

    root = tmp_path / "dogs"
    dogs = [f"dog{i}" for i in range(60)]
    splits = {d: identity_split(d) for d in dogs}
    assert {"val", "heldout"} <= set(splits.values())
    rng = np.random.default_rng(0)
    centres = {d: rng.normal(size=8) for d in dogs}
    vectors = {}
    for d in dogs:
        for k in range(3):
            (root / d).mkdir(parents=True, exist_ok=True)
            path = root / d / f"{k}.jpg"
            path.write_bytes(b"")
            v = centres[d] + rng.normal(scale=0.6, size=8)
            vectors[path] = v / np.linalg.norm(v)
    asked = []

    def embed(name, paths):
        asked.append((name, {splits[p.parent.name] for p in paths}))
        return np.stack([vectors[p] for p in paths]).astype(np.float32)

    report = ver.calibrate(embed, [ver.PhotoSet("faces", root, ("val",))])
    assert asked == [("faces-fit", {"val"}), ("faces-heldout", {"heldout"})]
    held = report["sets"]["faces"]["heldout"]
    assert held["dogs"] == sum(s == "heldout" for s in splits.values()) and held["roc_auc"] > 0.8
    assert report["chosen"] in ("isotonic", "platt")
    assert report["methods"][report["chosen"]]["mean_ece"] == min(m["mean_ece"] for m in report["methods"].values())
    assert report["fit"].method == report["chosen"]


def test_near_misses_of_one_breed_lower_the_probability_they_score_at(tmp_path):
    """Random different dogs score far apart; other dogs of one breed score as high as some photos of one dog do.
    Fit without the breed pairs, such a score reads as the same dog; with them, it must not."""
    from dogsearch.eval.splits import breed_photo_split, identity_split

    rng = np.random.default_rng(1)
    vectors = {}

    def photo(folder, name, v):
        path = folder / name
        folder.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        vectors[path] = v / np.linalg.norm(v)

    axes = [rng.normal(size=16) for _ in range(40)]  # breeds; two of them also have photos of other dogs
    dogs = [f"dog{i}" for i in range(80)]
    for i, d in enumerate(dogs):  # a dog near its breed's axis, its photos near the dog: mostly other breeds apart
        centre = 3 * axes[i % 40] + rng.normal(size=16)
        for k in range(3):
            photo(tmp_path / "dogs" / d, f"{k}.jpg", centre + rng.normal(scale=0.5, size=16))
    for b, breed in enumerate(("beagle", "foxhound")):  # other dogs of a breed: as close as photos of one dog
        for k in range(40):
            photo(tmp_path / "breeds" / breed, f"{k}.jpg", 3 * axes[b] + rng.normal(size=16))
        for k in range(10):
            photo(tmp_path / "dev" / breed, f"{k}.jpg", 3 * axes[b] + rng.normal(size=16))
    assert {"val", "heldout"} <= {identity_split(d) for d in dogs}
    assert {breed_photo_split("beagle", f"{k}.jpg") for k in range(40)} == {"val", "train"}

    def embed(name, paths):
        return np.stack([vectors[p] for p in paths]).astype(np.float32)

    faces = ver.PhotoSet("faces", tmp_path / "dogs", ("val", "train"))
    breeds = ver.PhotoSet("breeds", tmp_path / "breeds", ("val", "train"), kind="breeds", split="breed",
                          heldout_root=tmp_path / "dev")
    alone = ver.calibrate(embed, [faces], ("platt",))
    both = ver.calibrate(embed, [faces, breeds], ("platt",))
    assert both["sets"]["breeds"]["heldout"] == {"photos": 20, "breeds": 2, "pairs_different": 90,
                                                  "mean_score": pytest.approx(both["sets"]["breeds"]["heldout"]
                                                                              ["mean_score"])}
    scores = np.array([both["sets"]["breeds"]["fit"]["mean_score"]])
    assert both["fit"](scores)[0] < alone["fit"](scores)[0] - 0.1
    held = both["methods"]["platt"]["heldout"]
    breeds, faces = held["breeds"]["first_result"], held["faces"]["first_result"]
    assert breeds["queries"] == 20 and breeds["right"] == 0.0  # every first result of a breed's photo: another dog
    assert breeds["pair"]["right_likely"] == breeds["search"]["right_likely"] == 0.0
    assert faces["right"] > 0.5 and faces["queries"] == both["sets"]["faces"]["heldout"]["photos"]
    # the first result's gap to the next dog: near misses of one breed stand out less than a dog's own photos
    assert both["first"]["a"] > 0
    for f in (breeds, faces):
        assert f["search"]["wrong_likely"] <= f["pair"]["wrong_likely"]


def test_first_results_rank_dogs_and_say_whether_the_first_is_the_query_s_dog():
    # dog a: two photos; dog b: two photos close to a's second; breed photos: each another dog
    emb = np.array([[1, 0], [0.8, 0.6], [0.75, 0.66], [0.7, 0.71], [0, 1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    first, second, right, sets = ver.first_results([(emb[:4], ["a", "a", "b", "b"], False), (emb[4:], ["x"], True)])
    assert sets.tolist() == [0, 0, 0, 0, 1]
    # a's first photo finds a (its other photo) first, then b; a's second finds b's first photo before a's
    assert right.tolist() == [True, False, True, True, False]
    sims = emb @ emb.T
    assert first[0] == pytest.approx(sims[0, 1]) and second[0] == pytest.approx(sims[0, 2])
    assert first[4] == pytest.approx(sims[4, 3]) and second[4] == pytest.approx(sims[4, 1])  # best of b, then a


def test_first_results_judged_by_other_vectors_keep_the_ranking_and_score_by_the_judge():
    emb = np.array([[1, 0], [0.8, 0.6], [0.75, 0.66], [0.7, 0.71], [0, 1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    judge = emb * np.array([1, 3], dtype=np.float32)  # other vectors of the same photos: y stretched
    judge /= np.linalg.norm(judge, axis=1, keepdims=True)
    parts = [(emb[:4], ["a", "a", "b", "b"], False), (emb[4:], ["x"], True)]
    plain = ver.first_results(parts)
    first, second, right, sets = ver.first_results(parts, judged=[judge[:4], judge[4:]])
    assert right.tolist() == plain[2].tolist() and sets.tolist() == plain[3].tolist()  # ranked as before
    sims = judge @ judge.T
    # photo 0 ranks a first (its photo 1), then b; each scored by the judge's best photo of that dog
    assert first[0] == pytest.approx(sims[0, 1]) and second[0] == pytest.approx(max(sims[0, 2], sims[0, 3]))
    assert first[0] != pytest.approx(plain[0][0])


def test_first_results_reranked_take_the_first_by_the_rerank_score_as_the_search_does():
    emb = np.array([[1, 0], [0.8, 0.6], [0.75, 0.66], [0.7, 0.71], [0, 1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    parts = [(emb[:4], ["a", "a", "b", "b"], False), (emb[4:], ["x"], True)]
    judge = [emb[:4], emb[4:]]
    # the rest of the vectors: photo 1 (dog a) looks unlike every other photo, so a re-ranking by the rest puts b first
    rest = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [1, 0]], dtype=np.float32)
    plain = ver.first_results(parts, judged=judge)
    again = ver.first_results(parts, judged=judge, rerank=(Rerank(2.0, 1.0, 10), [rest[:4], rest[4:]]))
    assert plain[2][0] and not again[2][0]  # photo 0: its dog a first by the ViT, b first once re-ranked
    sims = emb @ emb.T
    assert again[0][0] == pytest.approx(max(sims[0, 2], sims[0, 3]))  # the first shown is judged by its own score
    assert (again[2] == plain[2])[1:].all()  # the others keep their first dog
    with pytest.raises(ValueError, match="judged"):  # the re-ranking's part scores are the judge's
        ver.first_results(parts, rerank=(Rerank(2.0, 1.0, 10), [rest[:4], rest[4:]]))


def test_several_query_photos_are_combined_against_one_gallery():
    # dog a: photos at 0, 20 and 60 degrees; dog b at 85 and 87. Each of a's photos in turn is the one to find, the
    # query its next photo(s). One photo: the photo at 20, asked with the one at 60, loses to b's 85 (25 degrees
    # against 40). Two photos: their mean (40, 30 or 10 degrees) is nearer the photo to find every time.
    angles = np.radians([0, 20, 60, 85, 87])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    labels = ["a", "a", "a", "b", "b"]
    one = multi_photo_recall(emb, labels, 1, min_photos=3)
    assert one["queries"] == 3 and one["recall@1"] == pytest.approx(2 / 3)
    two = multi_photo_recall(emb, labels, 2, min_photos=3)
    assert two["queries"] == 3 and two["recall@1"] == pytest.approx(1.0)
    # by default every dog with one photo more than the query is asked of: b too (1 photo finds the other)
    assert multi_photo_recall(emb, labels, 1)["queries"] == 5
    with pytest.raises(ValueError, match="no dog has 4"):
        multi_photo_recall(emb, labels, 3)


def test_several_query_photos_rank_dogs_by_their_best_photo_and_report_the_rank():
    # a's photo to find is at 0 degrees; the query is a's photo at 50. Dog b has two photos, at 30 and 35: its best
    # (35, 15 degrees off) beats a's (50 off), so a is the second dog, not the third photo: AP 1/2.
    angles = np.radians([0, 50, 30, 35])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    row = multi_photo_recall(emb, ["a", "a", "b", "b"], 1, min_photos=2)
    # queries: a's 0 (asked with 50: b's 35 wins), a's 50 (asked with 0: b's 30 wins), b's 30 and 35 (found)
    assert row["queries"] == 4 and row["recall@1"] == pytest.approx(0.5) and row["map"] == pytest.approx(0.75)
    assert row["rule"] == "mean"


def test_the_max_rule_lets_the_nearest_query_photo_decide():
    # a: photos at 0, 10 and 90 degrees; b at 60. Finding a's 0 with a's 10 and 90: their mean (50 degrees) is
    # nearer b's 60 than a's 0; the best of the two photos (10) finds a's 0.
    angles = np.radians([0, 10, 90, 60])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    labels = ["a", "a", "a", "b"]
    assert multi_photo_recall(emb, labels, 2, rule="max")["recall@1"] > multi_photo_recall(emb, labels, 2)["recall@1"]


class _LeftHalf:
    """Finds one dog in the left half of every photo but the ones named 'empty'."""

    name = "left-half"

    def detect(self, image):
        from dogsearch.models.detect import Detection

        if image.getpixel((0, 0)) == (0, 0, 0):
            return []
        return [Detection((0.0, 0.0, image.width / 2, float(image.height)), 0.9)]


def test_photos_are_embedded_as_the_search_crops_them(tmp_path):
    from PIL import Image

    from dogsearch.core.images import ImageLimits
    from tests.fakes import ColorGridModel

    model = ColorGridModel()
    left_red = Image.new("RGB", (64, 32), (220, 20, 20))
    left_red.paste((20, 20, 220), (32, 0, 64, 32))
    black = Image.new("RGB", (64, 32), (0, 0, 0))
    paths = []
    for name, im in (("dog.png", left_red), ("empty.png", black)):
        im.save(tmp_path / name)
        paths.append(tmp_path / name)
    vectors, no_dog = ver.search_crops_vectors(model, _LeftHalf(), paths, limits=ImageLimits(10**6, 10**6),
                                               decode_side=64, margin=0.0)
    assert no_dog == 1
    # the dog's crop is the red half alone; the photo without a dog is embedded whole
    assert vectors[0] == pytest.approx(model.embed_images([Image.new("RGB", (32, 32), (220, 20, 20))])[0], abs=1e-5)
    assert vectors[1] == pytest.approx(model.embed_images([black])[0], abs=1e-5)
    calls = []
    cache = tmp_path / "cache"
    for _ in range(2):
        got, _ = ver.cached(cache, {"k": 1}, lambda: calls.append(1) or (vectors, no_dog))
        assert got == pytest.approx(vectors)
    assert calls == [1]  # the rerun read the cache
