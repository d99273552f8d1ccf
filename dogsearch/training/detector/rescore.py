"""`dogsearch train detector-rescore`: fit the detector's re-scoring, each candidate box scored again from its crop.

1. ``dump``: each calibration photo's candidates (the head's boxes after NMS, before any threshold; training split,
   buckets 55-69: the head never fitted them) with their heat and the dog classifier's dog probability on the box's
   crop, written once to a JSON file, so every later choice runs on it without the models.
2. ``fit``: a logistic regression on the features of ``dogdet.rescore_features`` of each photo's first
   ``candidates`` boxes, a box labelled a dog when it overlaps a labelled dog at IoU >= 0.5; then the operating
   point by the detector's own rule (``train.operating_point``: fewest missed dogs + wrong boxes + photos without a
   dog given a box), on the re-scored boxes after ``suppress_parts``, as the detector answers them.
3. ``run``: both, then the weights into the delta's config.json (``rescore``, ``operating_point.rescored``); the
   head and its file stay as they are.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dogsearch.models import dogdet as D
from dogsearch.training.detector import data as T

FEATURES = ("heat", "p", "top")
CANDIDATES = 5  # on the calibration photos the first 5 by heat hold every right candidate the first 10 hold
L2 = 0.1  # of 1e-3 / 1e-2 / 0.1, the fewest mistakes in 5-fold cross-validation over the calibration photos
DUMP_CANDIDATES = 10


def dump(detector: D.CenterNetDetector, samples: Sequence[T.Sample], *, log=print) -> list[dict]:
    """Per photo: its labelled boxes and its first candidates with heat and ``p`` (the verifier's crop)."""
    out, started = [], time.monotonic()
    for i, sample in enumerate(samples):
        found = detector.candidates(sample.image)[:DUMP_CANDIDATES]
        p = [c.dog for c in detector.classify_crops(sample.image, [box for box, _ in found])]
        out.append({"source": sample.source, "truth": [list(b) for b in sample.boxes],
                    "candidates": [{"box": [round(v, 2) for v in box], "heat": round(heat, 5), "p": round(q, 5)}
                                   for (box, heat), q in zip(found, p, strict=True)]})
        if (i + 1) % 25 == 0:
            log(f"{i + 1}/{len(samples)} photos, {time.monotonic() - started:.0f} s")
    return out


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = L2, steps: int = 100) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression (the bias not shrunk), by Newton's method."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    reg = l2 * np.eye(xb.shape[1])
    reg[-1, -1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) / len(y) + reg @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + reg
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def _columns(record: dict, candidates: int) -> tuple[list, np.ndarray, np.ndarray]:
    found = record["candidates"][:candidates]
    heat, p = [c["heat"] for c in found], [c["p"] for c in found]
    features = D.rescore_features(heat, p)
    x = np.stack([features[name] for name in FEATURES], 1) if found else np.zeros((0, len(FEATURES)))
    return [tuple(c["box"]) for c in found], np.asarray(heat), x


def fit(records: Sequence[dict], *, candidates: int = CANDIDATES, l2: float = L2, inside: float | None = 0.6
        ) -> tuple[dict, float]:
    """(``rescore`` params, operating point) from dumped records."""
    from dogsearch.core.boxes import iou

    xs, ys = [], []
    for record in records:
        boxes, _, x = _columns(record, candidates)
        xs.append(x)
        ys.append([float(any(iou(b, t) >= 0.5 for t in record["truth"])) for b in boxes])
    w = fit_logistic(np.vstack(xs), np.concatenate(ys), l2=l2)
    params = {"candidates": candidates, "features": list(FEATURES), "weights": [round(float(v), 4) for v in w[:-1]],
              "bias": round(float(w[-1]), 4)}
    return params, operating_point(records, params, inside)


def scored(record: dict, params: dict) -> list[tuple[tuple, float]]:
    """A photo's first candidates with their scores, before any threshold or suppression."""
    boxes, heat, _ = _columns(record, params["candidates"])
    p = [c["p"] for c in record["candidates"][:params["candidates"]]]
    # ``verified``: the detector's own score of the same candidates, for a comparison (``cross_validate``)
    scores = [D.score_of(h, q, params["verified"]) for h, q in zip(heat, p, strict=True)] if (
        "verified" in params) else D.rescore(heat, p, params)
    return [(b, float(s)) for b, s in zip(boxes, scores, strict=True)]


def answers(records: Sequence[dict], params: dict, inside: float | None, threshold: float) -> list[list]:
    """Each photo's boxes as the detector answers them at ``threshold``."""
    return [_answer(scored(record, params), inside, threshold) for record in records]


def _answer(boxes: list[tuple[tuple, float]], inside: float | None, threshold: float) -> list:
    return D.suppress_parts([(b, s) for b, s in boxes if s >= threshold], inside)


def operating_point(records: Sequence[dict], params: dict, inside: float | None) -> float:
    """``train.operating_point``'s rule on the boxes after suppression: at each threshold the boxes are suppressed
    again (a box is dropped only by a better box that is itself answered).

    A photo's answer only changes at its own scores, so each photo is answered once per score it has (at most
    ``candidates`` + 1 times) and its mistakes are looked up at every cut: linear in the photos, where answering
    every photo at every cut was quadratic (over 10 minutes on 710 photos)."""
    from dogsearch.training.detector.train import best_threshold

    every = [scored(record, params) for record in records]
    cuts_at = sorted({s for boxes in every for _, s in _answer(boxes, inside, 0.0)})
    cuts = np.asarray([0.0] + [(a + b) / 2 for a, b in zip(cuts_at, cuts_at[1:], strict=False)] + [1.0])
    total = np.zeros(len(cuts), dtype=np.int64)
    for record, boxes in zip(records, every, strict=True):
        levels = sorted({s for _, s in boxes})
        # at a cut t the photo answers its boxes scored >= the first level >= t; past the last level, none
        per_level = [mistakes([record], [_answer(boxes, inside, level)]) for level in levels]
        per_level.append(mistakes([record], [[]]))
        total += np.asarray(per_level)[np.searchsorted(levels, cuts, side="left")]
    return best_threshold(cuts.tolist(), total.tolist())


def mistakes(records: Sequence[dict], found: Sequence[list]) -> int:
    """Missed dogs + boxes matching no dog (or a matched one again) + photos without a dog given a box."""
    from dogsearch.eval.detect import match
    from dogsearch.models.detect import Detection

    bad = 0
    for record, boxes in zip(records, found, strict=True):
        truth = [tuple(t) for t in record["truth"]]
        if not truth:
            bad += bool(boxes)
            continue
        hits = sum(hit for _, hit in match([Detection(b, s) for b, s in boxes], truth))
        bad += (len(truth) - hits) + (len(boxes) - hits)
    return bad


def cross_validate(records: Sequence[dict], *, candidates: int = CANDIDATES, l2: float = L2,
                   inside: float | None = 0.6, p_weight: float = 0.25) -> dict:
    """Out-of-fold mistakes of the re-scored and of the verified detector on records that carry their ``fold``
    (``train detector --folds K --dump-out-of-fold``): for each fold, the re-scoring is fitted and both operating
    points are chosen on the other folds' records, then applied to its own. The verified score is the shipped
    one, head^(1 - ``p_weight``) x p^``p_weight``, on the same candidates."""
    verified_params = {"candidates": candidates, "verified": p_weight}
    out = {}
    for method in ("verified", "rescored"):
        found = {}
        for k in sorted({r["fold"] for r in records}):
            train = [r for r in records if r["fold"] != k]
            test = [(i, r) for i, r in enumerate(records) if r["fold"] == k]
            params = fit(train, candidates=candidates, l2=l2, inside=inside)[0] if method == "rescored" else (
                verified_params)
            point = operating_point(train, params, inside)
            for (i, _), boxes in zip(test, answers([r for _, r in test], params, inside, point), strict=True):
                found[i] = boxes
        answered = [found[i] for i in range(len(records))]
        out[method] = {"mistakes": mistakes(records, answered), **_rates(records, answered)}
    return out


def _rates(records: Sequence[dict], answered: Sequence[list]) -> dict:
    from dogsearch.training.detector.train import rates

    return rates(answered, [[tuple(t) for t in r["truth"]] for r in records])


def run(dog_dir: Path, image_dirs: Sequence[Path], negative_dirs: Sequence[Path], weights: Path, dump_file: Path,
        *, log=print) -> dict:
    """Dump the calibration photos (once: an existing ``dump_file`` is read), fit, write into ``weights``."""
    if dump_file.is_file():
        records = json.loads(dump_file.read_text())
    else:
        detector = D.CenterNetDetector(weights, verify=True)
        samples = [*T.labelled_samples(dog_dir, image_dirs, "calibrate"),
                   *T.negative_samples(negative_dirs, "calibrate")]
        log(f"dumping the candidates of {len(samples)} calibration photos")
        records = dump(detector, samples, log=log)
        dump_file.parent.mkdir(parents=True, exist_ok=True)
        dump_file.write_text(json.dumps(records))
    config_path = weights / "config.json"
    config = json.loads(config_path.read_text())
    params, point = fit(records, inside=config.get("suppress_inside"))
    config["rescore"] = params
    config["operating_point"]["rescored"] = point
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    n_dogs = sum(len(r["truth"]) for r in records)
    found = answers(records, params, config.get("suppress_inside"), point)
    return {"rescore": params, "operating_point": point, "photos": len(records), "dogs": n_dogs,
            "mistakes": mistakes(records, found)}
