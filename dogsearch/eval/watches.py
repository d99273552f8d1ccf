"""Watches measured as their owners meet them (docs/lost-and-found.md, "Judged as a search"): `dogsearch eval watches`.

Held-out photos of individual dogs (the sets `dogsearch train calibration` measures on), with or without the
held-out breed photos (every photo another dog: the look-alikes a search ranks first), in one gallery. For each dog
with two photos or more, a watch is made from its first photo, the dog itself stored with that one photo (the
watched dog, left out of what it is compared with). Then every other photo arrives, one at a time, as a new dog:

* one of the watched dog's own other photos: an alert is *right*;
* a photo of another dog: an alert is *wrong*.

An arriving photo is judged against the gallery as it stands: every other dog's photos, its own dog's other photos
left out (each arrival is the first of its dog to come in, so another photo of it cannot be its look-alike), and
the watched dog's other photos left out as well (its first arrival). Two rules at one min_probability:

* ``pair``: the pair's probability alone (what watches did before);
* ``lead``: capped by its lead over the best other dog that the watch's photo's search shows (`Calibration.leading`,
  what a search's first result gets, and watches now; the first SHOWN dogs, as a search shows and the watches ask).

A calibration that reads a part of the vectors (a fusion's ViT part, dogsearch/core/judged.py) is read so here as
in the service: the probabilities of the part's cosines, the rival the best of them among the dogs the whole vectors
rank first.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from dogsearch.models.calibration import Calibration


def simulate(parts: Sequence[tuple[np.ndarray, Sequence[str], bool]], calibration: Calibration,
             min_probability: float) -> dict:
    """Right and wrong alerts of one watch per dog of the sets of individual dogs in ``parts`` (each set's
    (vectors, labels, every photo another dog?), as verification.first_results takes them), by set of the watched
    dog, under both rules."""
    from dogsearch.core.judged import judged_part
    from dogsearch.eval.verification import best_per_dog, one_gallery  # torch: not for the CLI's parser
    from dogsearch.gallery.judged import SHOWN

    vectors, dog, sets = one_gallery(parts)
    # what the probabilities read: a part of the vectors where the calibration says so (its cosines: judged.py); a
    # watch's search is not re-ranked (watches/watches.py)
    scored = vectors if calibration.part is None else judged_part(calibration.part).queries(vectors)
    first_photo = {}
    for i, d in enumerate(dog):
        if not parts[sets[i]][2]:
            first_photo.setdefault(int(d), []).append(i)
    watched = {d: photos[0] for d, photos in first_photo.items() if len(photos) >= 2}
    out: dict = {}
    for index in sorted({int(sets[q]) for q in watched.values()}):
        ws = [(d, q) for d, q in watched.items() if sets[q] == index]
        queries = np.array([q for _, q in ws])
        owners = np.array([d for d, _ in ws])
        sims = scored[queries] @ scored.T  # (watches, photos)
        by_dog = best_per_dog(sims, dog)  # (watches, dogs)
        by_dog[np.arange(len(ws)), owners] = -np.inf  # the watched dog is never its own rival
        ranked = by_dog if scored is vectors else best_per_dog(vectors[queries] @ vectors.T, dog)
        ranked[np.arange(len(ws)), owners] = -np.inf
        shown = np.argsort(-ranked, axis=1, kind="stable")[:, :SHOWN]  # the dogs its search shows first
        shown_scores = np.take_along_axis(by_dog, shown, axis=1)  # (watches, SHOWN)
        rival = np.where(shown[:, None, :] != dog[None, :, None], shown_scores[:, None, :], -np.inf).max(axis=2)
        rival[np.isinf(rival)] = np.nan  # (watches, photos): the best shown dog not the photo's own; none: NaN
        arrives = np.ones_like(sims, dtype=bool)
        arrives[np.arange(len(ws)), queries] = False  # the watch's own photo is stored already
        right = dog[None, :] == owners[:, None]
        rules = {"pair": calibration.probabilities(sims), "lead": calibration.leading(sims, rival)}
        counts = {"watches": len(ws), "own_arrivals": int((arrives & right).sum()),
                  "other_arrivals": int((arrives & ~right).sum())}
        for rule, p in rules.items():
            alert = arrives & (p >= min_probability)
            r, w = int((alert & right).sum()), int((alert & ~right).sum())
            counts[rule] = {
                "right_alerts": r, "wrong_alerts": w,
                "right_share_of_own": round(r / max(counts["own_arrivals"], 1), 4),  # recall over arrivals
                "watches_alerted_by_own": round(float((alert & right).any(axis=1).mean()), 4),
                "wrong_per_watch": round(w / len(ws), 3),
                "wrong_share_of_others": round(w / max(counts["other_arrivals"], 1), 6),
                "watches_with_a_wrong_alert": round(float((alert & ~right).any(axis=1).mean()), 4),
                "right_share_of_alerts": round(r / max(r + w, 1), 4),
            }
        out[str(index)] = counts
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dogsearch.eval.calibrate import add_arguments as calibration_arguments

    calibration_arguments(parser)
    parser.add_argument("--min-probability", type=float, default=0.5, help="the watches' min_probability")


def run(args: argparse.Namespace) -> int:
    """The shipped calibration of the model's crop vectors, on the held-out photos of the sets it was measured on."""
    from dogsearch.eval.calibrate import embedded, shipped

    if (found := shipped(args, "dogsearch eval watches")) is None:
        return 2
    embed, vectors_id, sets, calibration = found
    held = dict(zip([s.name for s in sets], embedded(embed, sets, "heldout"), strict=True))
    dogs = [n for n, (_, _, breeds) in held.items() if not breeds]
    report: dict = {"vectors": vectors_id, "min_probability": args.min_probability, "galleries": {}}
    for name in dogs:  # each set of dogs alone, then all held-out photos in one gallery
        report["galleries"][name] = {name: simulate([held[name]], calibration, args.min_probability)["0"]}
    names = list(held)
    pooled = simulate([held[n] for n in names], calibration, args.min_probability)
    report["galleries"]["all held-out"] = {names[int(i)]: v for i, v in pooled.items()}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"vectors {vectors_id}; one watch per held-out dog (its first photo), min_probability "
          f"{args.min_probability}")
    for gallery, by_set in report["galleries"].items():
        for name, c in by_set.items():
            print(f"gallery {gallery!r}, watches on {name}: {c['watches']} watches, {c['own_arrivals']} arrivals of "
                  f"their dogs, {c['other_arrivals']} of others")
            for rule in ("pair", "lead"):
                r = c[rule]
                print(f"    {rule:<5} right {r['right_alerts']:>5} ({r['right_share_of_own']:.3f} of own arrivals; "
                      f"{r['watches_alerted_by_own']:.3f} of watches)  wrong {r['wrong_alerts']:>6} "
                      f"({r['wrong_per_watch']:.2f} a watch; {r['watches_with_a_wrong_alert']:.3f} of watches)  "
                      f"right share of alerts {r['right_share_of_alerts']:.3f}")
    return 0
