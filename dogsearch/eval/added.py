"""A photo added to a dog, judged as the gateway judges it (`POST /v1/dogs/{id}/photos` answers `same_dog`,
`verdict`): `dogsearch eval added-photos`.

The held-out photos of individual dogs (faces and whole bodies, the sets `dogsearch train calibration` measures on).
Each photo of a dog with two photos or more is added to its own dog, the dog's other photos stored (*right* adds),
and to every other dog of its set (*wrong* adds: a photo of another dog added by mistake); of the wrong adds, the one
to the dog that looks most like it (its closest other dog) is the hard case. An add reads the cosine of the photo
to the dog's closest other photo (Gallery.likeness), on the part verdicts read, at a prior: the share of adds that
are right before the photo is seen. A person adding a photo to a dog says it shows that dog, so that share is high,
where a search's result is any dog of the gallery (`same_dog_prior`, 0.5).

For each prior, the shares of right and wrong adds read *likely*, *possible* and *unlikely* at the gateway's
thresholds.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dogsearch.models.calibration import Calibration

PRIORS = (0.5, 0.8, 0.9, 0.95)


def add_scores(vectors: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, wrong, hardest): the score of each photo added to its own dog (best cosine to the dog's other
    photos; dogs with two photos or more), to each other dog (photos x other dogs, flat), and to its closest other
    dog."""
    from dogsearch.eval.verification import best_per_dog

    names = sorted(set(labels))
    dog = np.array([names.index(label) for label in labels])
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)  # a photo is not its own other photo
    by_dog = best_per_dog(sims, dog)  # (photos, dogs)
    rows = np.arange(len(dog))
    right = by_dog[rows, dog]
    others = by_dog.copy()
    others[rows, dog] = np.nan
    wrong = others[~np.isnan(others)]
    return right[np.isfinite(right)], wrong, np.nanmax(others, axis=1)


def shares(p: np.ndarray, possible: float, likely: float) -> dict:
    return {"likely": round(float((p >= likely).mean()), 4),
            "possible": round(float(((p >= possible) & (p < likely)).mean()), 4),
            "unlikely": round(float((p < possible).mean()), 4)}


def judge(vectors: np.ndarray, labels: Sequence[str], calibration: Calibration, priors: Sequence[float] = PRIORS,
          possible: float = 0.5, likely: float = 0.9) -> dict:
    """Right, wrong and hardest-wrong adds of one set of dogs, read at each prior."""
    from dogsearch.core.judged import judged_part

    scored = vectors if calibration.part is None else judged_part(calibration.part).queries(vectors)
    right, wrong, hardest = add_scores(scored, labels)
    out: dict = {"photos": len(labels), "dogs": len(set(labels)), "right_adds": len(right),
                 "wrong_adds": len(wrong), "priors": {}}
    for prior in priors:
        out["priors"][str(prior)] = {name: shares(calibration.probabilities(s, prior), possible, likely)
                                     for name, s in (("right", right), ("wrong", wrong), ("hardest", hardest))}
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dogsearch.eval.calibrate import add_arguments as calibration_arguments

    calibration_arguments(parser)
    parser.add_argument("--priors", default=",".join(str(p) for p in PRIORS),
                        help="the shares of right adds to read them at, comma-separated")


def run(args: argparse.Namespace) -> int:
    """The shipped calibration of the model's crop vectors, on the held-out dogs of the sets it was measured on."""
    from dogsearch.eval.calibrate import calibration_sets
    from dogsearch.models.calibration import find
    from dogsearch.services.gateway.settings import GatewaySettings

    try:
        priors = [float(p) for p in args.priors.split(",")]
        if not all(0 < p < 1 for p in priors):
            raise ValueError(f"--priors {args.priors}: each between 0 and 1")
        embed, vectors_id, sets, _ = calibration_sets(args)
    except ValueError as exc:
        print(f"dogsearch eval added-photos: {exc}", file=sys.stderr)
        return 2
    calibration = find(vectors_id, args.models_dir)
    if calibration is None:
        print(f"dogsearch eval added-photos: no calibration for {vectors_id}", file=sys.stderr)
        return 2
    gateway = GatewaySettings()
    report: dict = {"vectors": vectors_id, "possible": gateway.same_dog_possible, "likely": gateway.same_dog_likely,
                    "sets": {}}
    for photo_set in sets:
        if photo_set.kind != "dogs":
            continue
        chosen = photo_set.parts()["heldout"]
        vectors = embed(f"{photo_set.name}-heldout", [p for p, _ in chosen])
        report["sets"][photo_set.name] = judge(vectors, [lab for _, lab in chosen], calibration, priors,
                                               gateway.same_dog_possible, gateway.same_dog_likely)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"vectors {vectors_id}; verdicts at possible {report['possible']}, likely {report['likely']}")
    for name, s in report["sets"].items():
        print(f"{name}: {s['dogs']} held-out dogs, {s['photos']} photos; {s['right_adds']} right adds, "
              f"{s['wrong_adds']} wrong")
        for prior, by in s["priors"].items():
            cells = "  ".join(f"{kind} {v['likely']:.3f}/{v['possible']:.3f}/{v['unlikely']:.3f}"
                              for kind, v in by.items())
            print(f"    prior {prior:<5} (likely/possible/unlikely)  {cells}")
    return 0
