"""`dogsearch train detector-second-look`: the point of the detector's second look (``dogdet.CenterNetDetector
.second_look``), chosen on the calibration photos (training split, buckets 55-69: the head never fitted them).

Only the photos the look is for count: those in which the detector answers no box, whose whole photo the dog
classifier calls a dog (at least ``photo_dog``, the embedder's ``whole_photo_dog`` default), and whose head's first
candidate covers less than ``max_share`` of the photo. Each gives that candidate with its verified score; the point
is the detector's own rule over them (``train.operating_point``: fewest missed dogs + wrong boxes + photos without a
dog given a box, the middle of the flat optimum). The delta's config.json gets ``second_look``; the head and its
file stay as they are.

``max_share``: the look is for a dog small in its scene, which the whole photo would drown in background. A dog
that fills its photo (a close-up, a face, a tightly framed body: most lost-and-found photos) is best taken whole,
and there the first candidate is mostly a part of it (a head, a front half): taking it cost the held-out dogs'
same-dog verdicts (docs/detection.md, "A second look"). 0.3 is issue 18's small dog (``core.boxes.SMALL_SHARE``).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from dogsearch.core.boxes import SMALL_SHARE, share
from dogsearch.models import dogdet as D
from dogsearch.models.detect import WHOLE_PHOTO_DOG
from dogsearch.training.detector import data as T

PHOTO_DOG = WHOLE_PHOTO_DOG  # a photo the embedder would take whole as a dog
MAX_SHARE = SMALL_SHARE  # issue 18's small dog: its box under 30 % of the photo


def looked_at(detector: D.CenterNetDetector, samples: Sequence[T.Sample], photo_dog: float = PHOTO_DOG
              ) -> list[dict]:
    """The samples the look is for, each with its labelled boxes and its first candidate as the look scores it
    (``first``: [box, verified score], or None when the head has no candidate)."""
    _, classifier = detector._parts()
    out = []
    for sample in samples:
        found = detector.candidates_many([sample.image])  # the head runs once for both questions
        if detector.detect_many([sample.image], found)[0]:
            continue
        photo = classifier.classify([sample.image])[0]
        if photo.dog < photo_dog:
            continue
        [first] = detector.first_candidates([sample.image], found)
        out.append({"source": sample.source, "truth": [list(b) for b in sample.boxes], "photo_dog": round(photo.dog, 4),
                    "first": [[round(v, 2) for v in first[0]], round(first[1], 4)] if first else None,
                    "share": round(share(first[0], *sample.image.size), 4) if first else None})
    return out


def choose(records: Sequence[dict], max_share: float = 1.0) -> float | None:
    """The look's point over the ``records`` (``looked_at``) whose first candidate covers less than ``max_share`` of
    its photo; None when none does (nothing to choose from: the delta then takes no look)."""
    from dogsearch.training.detector.train import operating_point

    records = [r for r in records if r["first"] and r["share"] < max_share]
    if not records:
        return None
    found = [[(tuple(r["first"][0]), r["first"][1])] for r in records]
    labelled = [(f, [tuple(t) for t in r["truth"]]) for f, r in zip(found, records, strict=True) if r["truth"]]
    negatives = [f for f, r in zip(found, records, strict=True) if not r["truth"]]
    return operating_point(labelled, negatives)


def run(dog_dir: Path, image_dirs: Sequence[Path], negative_dirs: Sequence[Path], weights: Path,
        photo_dog: float = PHOTO_DOG, max_share: float = MAX_SHARE, *, log=print) -> dict:
    """Choose the point on the calibration photos with the delta's head (any second look it had left out), write
    it into ``weights``/config.json."""
    config_path = weights / "config.json"
    config, state = D.load_weights(weights)
    config.pop("second_look", None)
    head = D.head_of(config)
    head.load_state_dict(state)
    detector = D.CenterNetDetector(config=config, head=head, verify=True)
    samples = [*T.labelled_samples(dog_dir, image_dirs, "calibrate"), *T.negative_samples(negative_dirs, "calibrate")]
    log(f"the detector on {len(samples)} calibration photos")
    records = looked_at(detector, samples, photo_dog)
    point = choose(records, max_share)
    if point is None or point >= 1.0:
        log("no calibration photo gains from a second look: the delta takes none")
    else:
        config["second_look"] = {"photo_dog": photo_dog, "score": point, "max_share": max_share}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return {"second_look": config.get("second_look"), "calibration_photos": len(samples),
            "looked_at": [{k: r[k] for k in ("source", "photo_dog", "first", "share")} | {"dogs": len(r["truth"])}
                          for r in records]}
