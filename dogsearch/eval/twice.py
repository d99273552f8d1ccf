"""One dog stored twice (docs/lost-and-found.md, "One dog stored twice"): `dogsearch eval stored-twice`.

An owner's "lost" report and a shelter's "found" one, or two finders, store one dog as two gallery dogs. A search
for it then finds it twice, first and second, and judged against each other neither stands out (models/calibration.py):
both read "unlikely" exactly when the search found the dog twice.

The galleries: the held-out photos of individual dogs (faces, whole bodies) with the held-out breed photos (every
photo another dog: the look-alikes a search ranks first), as `dogsearch train calibration` measures its first
results, but every other dog with three photos or more (by a hash of its name) stored twice: two gallery dogs, one
holding its even photos, the other its odd ones. Each photo searches the rest (its own photo left out), ranked as
the service ranks (by the whole vector; a fusion re-ranked and judged by its part), and the first SHOWN dogs are
judged as before (each against the best other result) and as now (with the shown dogs' own cosines:
``Calibration.results``' ``alike``). Measured per query, as in the first-result tables: a right first result read
*likely* / *possible* or *likely*, a wrong first result read *likely* / *possible*; and since a result after the
first may now read as the dog, any wrong result shown read *likely* / *possible*. The same figures on the same photos
with no dog stored twice (the galleries so far) say what the rule costs where nothing is doubled.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dogsearch.core.judged import JudgedPart, judged_part
from dogsearch.eval.calibrate import LIKELY, POSSIBLE
from dogsearch.eval.splits import bucket
from dogsearch.gallery.judged import SHOWN
from dogsearch.models.calibration import Calibration

KEYS = ("right_likely", "right_possible_or_likely", "wrong_likely", "wrong_possible_or_likely", "any_wrong_likely",
        "any_wrong_possible_or_likely")  # the figures printed, before -> after
Part = tuple[np.ndarray, Sequence[str], bool]  # a set's (vectors, labels, every photo another dog?)


def doubled(label: str) -> bool:
    """Whether a dog of three photos or more is stored twice: half of them, by a hash of its name."""
    return bucket(f"stored-twice:{label}") < 50


@dataclass(frozen=True)
class Shown:
    """The first SHOWN dogs of each query's search, in the search's order (a gallery with fewer: NaN scores)."""

    scores: np.ndarray  # (queries, SHOWN): the score each dog's verdict reads
    alike: np.ndarray  # (queries, SHOWN, SHOWN): those dogs' own cosines (of their best photos for the query)
    right: np.ndarray  # (queries, SHOWN): the query's dog
    sets: np.ndarray  # (queries,): the query's set
    twice: np.ndarray  # (queries,): its dog is stored twice

    def of(self, keep: np.ndarray) -> Shown:
        return Shown(self.scores[keep], self.alike[keep], self.right[keep], self.sets[keep], self.twice[keep])


def shown(parts: Sequence[Part], part: JudgedPart | None = None, twice: bool = True) -> Shown:
    """Every photo of ``parts`` in one gallery searching the others. ``part``: the vectors are a fusion's, ranked by
    the whole vector (re-ranked as its part says) and judged by that part's cosines. ``twice``: the dogs ``doubled``
    picks (of sets of individual dogs, with three photos or more) are stored as two gallery dogs."""
    from dogsearch.eval.verification import one_gallery, searches  # torch: not for the CLI's parser

    vectors, truth, sets = one_gallery(parts)
    judged = vectors if part is None else part.queries(vectors)
    gallery = _stored(truth, [None if breeds else lab for _, labels, breeds in parts for lab in labels], twice)
    rerank = None if part is None or part.rerank is None else (part.rerank, [part.rest_queries(vectors)])
    ranked, scores = searches(vectors, gallery, None if part is None else [judged], rerank)
    order = np.argsort(-ranked, axis=1, kind="stable")[:, :SHOWN]
    top = np.take_along_axis(scores, order, axis=1)
    # each shown dog's entry: its best photo for the query by the whole vector, as a search's match names it
    photos = [np.flatnonzero(gallery == g) for g in range(gallery.max() + 1)]
    whole = vectors @ vectors.T
    np.fill_diagonal(whole, -np.inf)
    best = np.array([[photos[g][np.argmax(whole[q, photos[g]])] for g in row] for q, row in enumerate(order)])
    unit = judged / np.linalg.norm(judged, axis=1, keepdims=True)
    alike = np.einsum("qsd,qtd->qst", unit[best], unit[best])
    found = np.isfinite(top)  # a gallery of fewer dogs than SHOWN (or the query's only photo of its entry)
    top = np.where(found, top, np.nan)
    alike = np.where(found[:, :, None] & found[:, None, :], alike, np.nan)
    dog_of = np.empty(gallery.max() + 1, dtype=int)
    dog_of[gallery] = truth
    right = dog_of[order] == truth[:, None]
    return Shown(top.astype(np.float64), alike.astype(np.float64), right & found, sets, _twice_of(gallery, truth))


def _stored(truth: np.ndarray, labels: list[str | None], twice: bool) -> np.ndarray:
    """Each photo's gallery dog (0..G-1) from its real dog (``truth``): a doubled dog's even photos one gallery dog,
    its odd ones another. ``labels``: each photo's dog's name (None: a breed photo, each its own dog)."""
    stored = [str(t) for t in truth]
    if twice:
        seen: dict[int, int] = {}
        counts = np.bincount(truth)
        for i, (t, label) in enumerate(zip(truth, labels, strict=True)):
            if label is not None and counts[t] >= 3 and doubled(label):
                stored[i] = f"{t}#{seen.get(t, 0) % 2}"
                seen[t] = seen.get(t, 0) + 1
    return np.unique(np.asarray(stored), return_inverse=True)[1]


def _twice_of(gallery: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each photo's dog is stored as two gallery dogs."""
    dogs = {}
    for g, t in zip(gallery, truth, strict=True):
        dogs.setdefault(int(t), set()).add(int(g))
    return np.array([len(dogs[int(t)]) > 1 for t in truth])


def figures(found: Shown, judge: Callable[[np.ndarray, np.ndarray | None], np.ndarray], likely: float,
            possible: float) -> dict:
    """The shares of queries whose first result is right and reads likely / possible or likely, wrong and reads
    likely / possible or likely; whose shown results hold a wrong one that reads likely / possible or likely; and
    of which the query's dog (any of its entries) reads likely / possible or likely. ``judge(scores, alike)``: the
    probabilities of one search's results."""
    p = np.zeros(found.scores.shape)
    for q, (s, a) in enumerate(zip(found.scores, found.alike, strict=True)):
        m = ~np.isnan(s)
        p[q, m] = judge(s[m], a[np.ix_(m, m)])
    right = found.right[:, 0]
    wrong = ~found.right & ~np.isnan(found.scores)

    def share(m: np.ndarray) -> float:
        return round(float(m.mean()), 4) if len(m) else 0.0

    return {"queries": int(len(right)), "right": share(right),
            "right_likely": share(right & (p[:, 0] >= likely)),
            "right_possible_or_likely": share(right & (p[:, 0] >= possible)),
            "wrong_likely": share(~right & (p[:, 0] >= likely)),
            "wrong_possible_or_likely": share(~right & (p[:, 0] >= possible)),
            "any_wrong_likely": share((wrong & (p >= likely)).any(axis=1)),
            "any_wrong_possible_or_likely": share((wrong & (p >= possible)).any(axis=1)),
            "dog_likely": share((found.right & (p >= likely)).any(axis=1)),
            "dog_possible_or_likely": share((found.right & (p >= possible)).any(axis=1))}


def measure(parts: Sequence[Part], names: Sequence[str], calibration: Calibration, likely: float = LIKELY,
            possible: float = POSSIBLE) -> dict:
    """Both galleries of ``parts`` (some dogs stored twice; none), each set's queries (of a set of dogs: those
    whose dog is stored twice and the others apart) judged as before (against the best other result) and with
    the results' own cosines (``Calibration.results``'s ``alike``)."""
    part = None if calibration.part is None else judged_part(calibration.part)
    rules = {"before": lambda s, a: calibration.results(s),
             "after": lambda s, a: calibration.results(s, alike=a)}
    out: dict = {}
    for gallery, twice in (("some stored twice", True), ("none stored twice", False)):
        found = shown(parts, part, twice)
        out[gallery] = {}
        for index, (name, (_, _, breeds)) in enumerate(zip(names, parts, strict=True)):
            of_set = found.sets == index
            groups = {"all": of_set} if breeds or not twice else {"stored twice": of_set & found.twice,
                                                                   "stored once": of_set & ~found.twice}
            out[gallery][name] = {group: {rule: figures(found.of(keep), judge, likely, possible)
                                          for rule, judge in rules.items()} for group, keep in groups.items()}
    return out


def run(args: argparse.Namespace) -> int:
    """The shipped calibration of the model's crop vectors, on the fit and held-out photos of the sets it was fit
    and measured on."""
    from dogsearch.eval.calibrate import embedded, shipped

    if (found := shipped(args, "dogsearch eval stored-twice")) is None:
        return 2
    embed, vectors_id, sets, calibration = found
    report: dict = {"vectors": vectors_id, "thresholds": {"likely": LIKELY, "possible": POSSIBLE},
                    "splits": {split: measure(embedded(embed, sets, split), [s.name for s in sets], calibration)
                               for split in ("fit", "heldout")}}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"vectors {vectors_id}; each photo searches the rest; shares of queries, before -> after")
    for split, galleries in report["splits"].items():
        for gallery, by_set in galleries.items():
            print(f"{split}, {gallery}:")
            for name, groups in by_set.items():
                for group, r in groups.items():
                    b, a = r["before"], r["after"]
                    cells = "  ".join(f"{key} {b[key]:.3f} -> {a[key]:.3f}" for key in KEYS)
                    print(f"    {name:<14} {group:<13} {b['queries']:>5} queries, first right {b['right']:.3f}: "
                          f"{cells}")
    return 0

