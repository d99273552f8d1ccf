"""Is this the same dog? Verification of individual dogs from pairs of photos, and the score → probability map.

Every photo is embedded as a search embeds it (the embedder's dog path: the detector's largest dog cropped with the
service's margin, the whole photo when it finds none), every pair of photos of a set is scored by cosine, and a pair
is *same* when both photos show one dog. From those scores:

* ``roc_auc``: the chance that a random same-dog pair scores above a random different-dog pair (ties count half);
* ``eer``: the error rate where false matches and missed matches are equally common;
* ``tmr_at_fmr``: the share of same-dog pairs accepted at the threshold that accepts 1 % of different-dog pairs;
* ``ece``: the expected calibration error of a probability map on balanced pairs (same and different pairs weigh
  half each, the prior the map is fit at): 15 equal-width bins of the predicted probability, the weighted mean gap
  between each bin's mean prediction and its share of same-dog pairs.

The map (``fit_isotonic``: pool-adjacent-violators; ``fit_platt``: a logistic curve of the score) is fit on the pairs
of validation dogs only and measured on held-out dogs (``dogsearch train calibration``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dogsearch.core.boxes import DEFAULT_MARGIN
from dogsearch.core.judged import Rerank
from dogsearch.gallery.judged import SHOWN

ECE_BINS = 15
FMR = 0.01


# ---------------------------------------------------------------- the vectors a search compares

def search_crops_vectors(model, detector, paths: Sequence[Path], *, limits, decode_side: int,
                         margin: float = DEFAULT_MARGIN, batch_size: int = 32,
                         progress: Callable | None = None) -> tuple[np.ndarray, int]:
    """Each photo's vector as the embedder's dog path makes it (services/embedder/dogs.py: decode, detect, the
    largest dog's crop, the model), and how many photos showed no dog (their whole photo is embedded, as the
    service does for a dog the detector missed)."""
    from dogsearch.services.embedder.dogs import dogs_of

    chunks, batch, no_dog = [], [], 0
    items = progress(paths) if progress else paths
    for path in items:
        decoded = limits.decode(Path(path).read_bytes(), min_side=decode_side)
        found = dogs_of(decoded, detector.detect(decoded.image), whole_if_none=True, margin=margin,
                        crop_side=model.decode_side)
        dog = found.dogs[0]
        no_dog += dog.score is None
        batch.append(model.preprocess(dog.crop.convert("RGB")))
        if len(batch) == batch_size:
            chunks.append(model.embed(torch.stack(batch)))
            batch = []
    if batch:
        chunks.append(model.embed(torch.stack(batch)))
    emb = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, model.dim), np.float32)
    return emb, no_dog


def cached(path: Path | None, key: dict, make: Callable[[], tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """``make()`` once per ``key`` (model, detector, files) under ``path``; reruns load it."""
    if path is None:
        return make()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    file = Path(path) / f"vectors-{digest}.npz"
    if file.is_file():
        with np.load(file) as data:
            return data["vectors"], int(data["no_dog"])
    vectors, no_dog = make()
    file.parent.mkdir(parents=True, exist_ok=True)
    np.savez(file, vectors=vectors, no_dog=no_dog)
    return vectors, no_dog


# ---------------------------------------------------------------- pairs and verification figures

def pair_scores(vectors: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(cosine scores, same-dog flags) of every unordered pair of photos."""
    emb = np.asarray(vectors, dtype=np.float32)
    lab = np.asarray([str(x) for x in labels])
    if emb.shape[0] != len(lab) or len(lab) < 2:
        raise ValueError("need at least 2 vectors with one label each")
    i, j = np.triu_indices(len(lab), k=1)
    sims = emb @ emb.T
    return sims[i, j].astype(np.float64), lab[i] == lab[j]


def balanced_weights(same: np.ndarray, groups: np.ndarray | None = None, negative_only: Sequence = ()) -> np.ndarray:
    """Weights that give same-dog and different-dog pairs half the total each (the prior of 0.5 a map is fit at),
    and within each, every group (a set of photos: faces, whole bodies) an equal share. Groups in ``negative_only``
    (photos of breeds, where every pair is two dogs) share only the different-dog half."""
    same = np.asarray(same, dtype=bool)
    groups = np.zeros(len(same), dtype=int) if groups is None else np.asarray(groups)
    names = np.unique(groups)
    w = np.zeros(len(same))
    for flag in (True, False):
        sharing = [g for g in names if not (flag and g in negative_only)]
        if not sharing:
            raise ValueError("no group has same-dog pairs")
        for g in sharing:
            m = (same == flag) & (groups == g)
            if not m.any():
                raise ValueError(f"group {g!r} has no {'same' if flag else 'different'}-dog pairs")
            w[m] = 0.5 / len(sharing) / m.sum()
    return w


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Mann-Whitney: P(a same-dog pair scores above a different-dog pair), ties half."""
    scores, same = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if not n_pos or not n_neg:
        raise ValueError("need same-dog and different-dog pairs")
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _rates(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, false match rate, true match rate) accepting score >= threshold, thresholds descending."""
    thresholds = np.unique(scores)[::-1]
    pos = np.sort(scores[same])
    neg = np.sort(scores[~same])
    tmr = (len(pos) - np.searchsorted(pos, thresholds, side="left")) / len(pos)
    fmr = (len(neg) - np.searchsorted(neg, thresholds, side="left")) / len(neg)
    return thresholds, fmr, tmr


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false match rate meets the false non-match rate (interpolated between the two
    thresholds that straddle it)."""
    _, fmr, tmr = _rates(np.asarray(scores, np.float64), np.asarray(same, bool))
    fnmr = 1.0 - tmr
    diff = fmr - fnmr  # rises from <= 0 (strict threshold) to >= 0 (lenient)
    k = int(np.argmax(diff >= 0))
    if k == 0:
        return float((fmr[0] + fnmr[0]) / 2)
    d0, d1 = diff[k - 1], diff[k]
    t = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    return float(fmr[k - 1] + t * (fmr[k] - fmr[k - 1]))


def tmr_at_fmr(scores: np.ndarray, same: np.ndarray, fmr_target: float = FMR) -> tuple[float, float]:
    """(true match rate, threshold) at the most lenient threshold whose false match rate is at most the target."""
    thresholds, fmr, tmr = _rates(np.asarray(scores, np.float64), np.asarray(same, bool))
    ok = np.nonzero(fmr <= fmr_target)[0]
    if not len(ok):
        return 0.0, float("inf")
    k = ok[-1]
    return float(tmr[k]), float(thresholds[k])


def ece(probabilities: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None,
        bins: int = ECE_BINS) -> float:
    """Expected calibration error: sum over equal-width bins of |mean prediction - share same| x the bin's weight."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    y = np.asarray(same, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = index == b
        wb = w[m].sum()
        if wb > 0:
            total += abs(np.dot(w[m], p[m]) / wb - np.dot(w[m], y[m]) / wb) * wb
    return float(total)


def verification(scores: np.ndarray, same: np.ndarray) -> dict:
    tmr, threshold = tmr_at_fmr(scores, same)
    return {"pairs_same": int(np.sum(same)), "pairs_different": int(np.sum(~np.asarray(same, bool))),
            "roc_auc": round(roc_auc(scores, same), 4), "eer": round(eer(scores, same), 4),
            "tmr@fmr1%": round(tmr, 4), "threshold@fmr1%": round(threshold, 4)}


# ---------------------------------------------------------------- score -> probability maps

def fit_isotonic(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None,
                 ) -> tuple[list[float], list[float]]:
    """Weighted pool-adjacent-violators: the non-decreasing step function of the score closest (least squares) to
    the same-dog flags. Returned as knots (x, y): each pooled block's mean score and its share of same-dog pairs, a
    curve that is then read by linear interpolation (flat beyond the ends)."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    x, y, w = x[order], y[order], w[order]
    # blocks as stacks of (weight, weighted y sum, weighted x sum)
    bw: list[float] = []
    by: list[float] = []
    bx: list[float] = []
    for xi, yi, wi in zip(x, y, w, strict=True):
        bw.append(wi)
        by.append(wi * yi)
        bx.append(wi * xi)
        while len(bw) > 1 and by[-2] / bw[-2] >= by[-1] / bw[-1]:
            wl, yl, xl = bw.pop(), by.pop(), bx.pop()
            bw[-1] += wl
            by[-1] += yl
            bx[-1] += xl
    knots_x = [bx[i] / bw[i] for i in range(len(bw))]
    knots_y = [by[i] / bw[i] for i in range(len(bw))]
    return [round(v, 6) for v in knots_x], [round(v, 6) for v in knots_y]


def fit_platt(scores: np.ndarray, same: np.ndarray, weights: np.ndarray | None = None,
              iterations: int = 100) -> tuple[float, float]:
    """(a, b) of p = 1 / (1 + exp(-(a * score + b))), by Newton's method on the weighted log-loss."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(same, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        g = np.array([np.dot(w, (p - y) * x), np.dot(w, p - y)])
        s = w * p * (1 - p)
        h = np.array([[np.dot(s, x * x), np.dot(s, x)], [np.dot(s, x), s.sum()]]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


@dataclass(frozen=True)
class Fit:
    method: str
    params: dict

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        from dogsearch.models.calibration import Calibration

        return Calibration("", self.method, self.params, 0.5).probabilities(scores)


def fit(method: str, scores: np.ndarray, same: np.ndarray, groups: np.ndarray | None = None,
        negative_only: Sequence = ()) -> Fit:
    w = balanced_weights(same, groups, negative_only)
    if method == "isotonic":
        x, y = fit_isotonic(scores, same, w)
        return Fit("isotonic", {"x": x, "y": y})
    if method == "platt":
        a, b = fit_platt(scores, same, w)
        return Fit("platt", {"a": round(a, 6), "b": round(b, 6)})
    raise ValueError(f"unknown calibration method {method!r}: isotonic or platt")



# ---------------------------------------------------------------- the whole measurement

@dataclass(frozen=True)
class PhotoSet:
    """Photos in one folder a label: pairs of its ``fit`` splits fit the map, those of ``heldout`` measure it.

    ``kind`` "dogs": a folder is one dog (faces, whole bodies), so pairs are same-dog or different-dog. "breeds": a
    folder is a breed and every photo another dog (Imagewoof, Oxford pets), so only its pairs *within* a breed are
    used, all different-dog: the near misses a search ranks first, which pairs of random dogs (mostly of other
    breeds) hardly sample. Without them a beagle scored against a foxhound read as the same dog."""

    name: str
    root: Path
    fit: tuple[str, ...]
    heldout: str = "heldout"
    kind: Literal["dogs", "breeds"] = "dogs"
    split: Literal["identity", "breed", "unseen-breed"] = "identity"  # how splits.select splits the folder
    heldout_root: Path | None = None  # a separate held-out folder (Imagewoof's dev) instead of the heldout split
    per_label: int | None = None  # the first N photos of each label only (embedding costs)

    def parts(self) -> dict[str, list[tuple[Path, str]]]:
        from dogsearch.eval.splits import labelled_images, select

        items = labelled_images(self.root)
        held = labelled_images(self.heldout_root) if self.heldout_root else select(items, self.split, self.heldout)
        return {"fit": self._first([it for s in self.fit for it in select(items, self.split, s)]),
                "heldout": self._first(held)}

    def _first(self, items: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
        if self.per_label is None:
            return items
        seen: dict[str, int] = {}
        kept = []
        for path, label in items:
            seen[label] = seen.get(label, 0) + 1
            if seen[label] <= self.per_label:
                kept.append((path, label))
        return kept

    def pairs(self, vectors: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        scores, same_label = pair_scores(vectors, labels)
        if self.kind == "dogs":
            return scores, same_label
        return scores[same_label], np.zeros(int(same_label.sum()), dtype=bool)


def first_results(parts: Sequence[tuple[np.ndarray, Sequence[str], bool]],
                  judged: Sequence[np.ndarray] | None = None,
                  rerank: tuple[Rerank, Sequence[np.ndarray]] | None = None) -> tuple[np.ndarray, ...]:
    """Searches in one gallery of every set's photos, each photo the query against all the others, results ranked by
    dog (a dog's best photo): (first result's score, the next dog's score, is the first the query's dog?, the set
    of the query). ``parts``: each set's (vectors, labels, every photo another dog?). ``judged``: each set's other
    vectors of the same photos, whose best photo of each dog gives its score (a search ranked by one vector and
    judged by another: dogsearch/core/judged.py); the next dog's score is then the best of the other dogs a search
    shows (gallery/judged.py's SHOWN), as the service judges its first result against every dog it shows.
    ``rerank``: (the re-ranking, each set's rest of the vectors): the first dogs ranked again by the judged scores
    and the rest's, as a search ranks (needs ``judged``)."""
    vectors, dog, sets = one_gallery(parts)
    ranked, scores = searches(vectors, dog, judged, rerank)
    shown = np.argsort(-ranked, axis=1, kind="stable")[:, :2 if judged is None else SHOWN]
    rows = np.arange(len(dog))
    first, second = scores[rows, shown[:, 0]], scores[rows[:, None], shown[:, 1:]].max(axis=1)
    return first.astype(np.float64), second.astype(np.float64), shown[:, 0] == dog, sets


def searches(vectors: np.ndarray, dog: np.ndarray, judged: Sequence[np.ndarray] | None = None,
             rerank: tuple[Rerank, Sequence[np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each photo of a gallery (``vectors``, each photo's gallery dog ``dog`` as 0..D-1) searching all the others:
    (queries, dogs) scores whose order per row is the search's, and the scores its verdicts read (``judged`` and
    ``rerank`` as first_results takes them)."""
    if rerank is not None and judged is None:
        raise ValueError("a re-ranking reads the judged part's scores: pass judged too")
    if dog.max() + 1 < 3:
        raise ValueError("first results need at least 3 dogs")

    def by_dog(v: np.ndarray) -> np.ndarray:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)  # a photo never finds itself
        return best_per_dog(sims, dog)

    def stacked(per_set: Sequence[np.ndarray]) -> np.ndarray:  # other vectors of the same photos, in one gallery
        return np.concatenate([np.asarray(v, dtype=np.float32) for v in per_set])

    ranked = by_dog(vectors)
    scores = ranked if judged is None else by_dog(stacked(judged))
    if rerank is not None:
        rule, rest = rerank
        ranked = rule.searched(ranked, scores, by_dog(stacked(rest)))
    return ranked, scores


def one_gallery(parts: Sequence[tuple[np.ndarray, Sequence[str], bool]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every set's photos in one gallery: (vectors, each photo's dog as 0..D-1, each photo's set). ``parts``: each
    set's (vectors, labels, every photo another dog?)."""
    vectors = np.concatenate([np.asarray(v, dtype=np.float32) for v, _, _ in parts])
    dogs, sets = [], []
    for index, (_, labels, each_its_own) in enumerate(parts):
        dogs += [f"{index}/{k}" if each_its_own else f"{index}/{lab}" for k, lab in enumerate(labels)]
        sets += [index] * len(labels)
    _, dog = np.unique(np.asarray(dogs), return_inverse=True)
    return vectors, dog, np.asarray(sets)


def best_per_dog(sims: np.ndarray, dog: np.ndarray) -> np.ndarray:
    """(queries, dogs): each query's best score among each dog's photos (columns of ``sims``, one a photo), as a
    search ranks dogs."""
    order = np.argsort(dog, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(dog[order]) != 0])
    return np.maximum.reduceat(sims[:, order], starts, axis=1)


def fit_first(first: np.ndarray, second: np.ndarray, right: np.ndarray, sets: np.ndarray) -> dict:
    """P(the first result is the dog | its gap to the next dog), a logistic curve fit at even odds (right and wrong
    first results weigh half each, every set that has them an equal share of each), like the pair map."""
    weights = np.zeros(len(right))
    for flag in (True, False):
        having = [g for g in np.unique(sets) if np.any((right == flag) & (sets == g))]
        if not having:
            raise ValueError(f"no {'right' if flag else 'wrong'} first results to fit on")
        for g in having:
            m = (right == flag) & (sets == g)
            weights[m] = 0.5 / len(having) / m.sum()
    a, b = fit_platt(first - second, right, weights)
    return {"a": round(a, 6), "b": round(b, 6)}


def calibrate(embed: Callable[[str, list[Path]], np.ndarray], sets: Sequence[PhotoSet],
              methods: Sequence[str] = ("isotonic", "platt"), likely: float = 0.9, possible: float = 0.5) -> dict:
    """Fit every method on the fit splits' pairs of all sets together (each set weighs the same), and measure each on
    every set's held-out pairs; the method with the lowest mean held-out ECE is chosen. ``embed(name, paths)`` gives
    the vectors (as the search makes them). For a set of breeds, where every photo is another dog, what is measured
    is how often a photo's best match (a search's first result, another dog) would read as ``likely`` or
    ``possible`` the same dog."""
    fit_scores, fit_same, fit_groups, held, report = [], [], [], {}, {"sets": {}}
    galleries: dict[str, list] = {"fit": [], "heldout": []}
    for index, photo_set in enumerate(sets):
        info = {"dir": str(photo_set.root), "kind": photo_set.kind, "fit_splits": list(photo_set.fit),
                "heldout": str(photo_set.heldout_root or photo_set.heldout)}
        if photo_set.per_label is not None:
            info["per_label"] = photo_set.per_label
        for part, chosen in photo_set.parts().items():
            if not chosen:
                raise ValueError(f"{photo_set.root}: no photos in the {part} split(s)")
            vectors = embed(f"{photo_set.name}-{part}", [p for p, _ in chosen])
            labels = [lab for _, lab in chosen]
            galleries[part].append((vectors, labels, photo_set.kind == "breeds"))
            scores, same = photo_set.pairs(vectors, labels)
            key = "dogs" if photo_set.kind == "dogs" else "breeds"
            info[part] = {"photos": len(chosen), key: len(set(labels)),
                          **(verification(scores, same) if photo_set.kind == "dogs" else
                             {"pairs_different": len(scores), "mean_score": round(float(scores.mean()), 4)})}
            if part == "fit":
                fit_scores.append(scores)
                fit_same.append(same)
                fit_groups.append(np.full(len(scores), index))
            else:
                held[photo_set.name] = (scores, same)
        report["sets"][photo_set.name] = info
    scores, same, groups = np.concatenate(fit_scores), np.concatenate(fit_same), np.concatenate(fit_groups)
    negative_only = [i for i, s in enumerate(sets) if s.kind == "breeds"]
    try:
        first: dict | None = fit_first(*first_results(galleries["fit"]))
    except ValueError:  # too few dogs, or every search right: nothing to fit the gap on; pairs alone then
        first = None
    held_first = first_results(galleries["heldout"])
    report["first"] = first
    fits, report["methods"] = {}, {}
    for method in methods:
        fits[method] = fitted = fit(method, scores, same, groups, negative_only)
        per_set = {}
        for index, (name, (s, y)) in enumerate(held.items()):
            weights = balanced_weights(y) if y.any() else None  # a set of breeds: all pairs are different dogs
            per_set[name] = {"ece": round(ece(fitted(s), y, weights), 4),
                             "first_result": _first_figures(fitted, first, held_first, index, likely, possible)}
        per_set_ece = [v["ece"] for v in per_set.values()]
        report["methods"][method] = {"heldout": per_set, "mean_ece": round(float(np.mean(per_set_ece)), 4),
                                     "knots": len(fitted.params.get("x", [])) or None}
    chosen = min(methods, key=lambda m: report["methods"][m]["mean_ece"])
    report["chosen"] = chosen
    report["fit"] = fits[chosen]
    return report


def _first_figures(fitted: Fit, first: dict | None, held: tuple[np.ndarray, ...], index: int, likely: float,
                   possible: float) -> dict:
    """How the first results of one set's queries read: by their pair's score alone, and as searches answer
    (capped by how far each stands out from the next dog)."""
    from dogsearch.models.calibration import Calibration

    s1, s2, right, _ = (a[held[3] == index] for a in held)
    ranked = Calibration("", fitted.method, fitted.params, 0.5, first=first)
    out = {"queries": len(s1), "right": round(float(right.mean()), 4)}
    searched = np.array([ranked.results([a, b])[0] for a, b in zip(s1, s2, strict=True)])
    for rule, p in (("pair", fitted(s1)), ("search", searched)):
        out[rule] = {"mean_p": round(float(p.mean()), 4),
                     "right_likely": round(float((right & (p >= likely)).mean()), 4),
                     "right_possible_or_likely": round(float((right & (p >= possible)).mean()), 4),
                     "wrong_likely": round(float((~right & (p >= likely)).mean()), 4),
                     "wrong_possible_or_likely": round(float((~right & (p >= possible)).mean()), 4)}
    return out
