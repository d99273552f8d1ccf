"""The detector's flip test (docs/detection.md, "The mirror image as a second look"): the shipped delta's head on
each photo and its mirror image, maps averaged (``dogdet.flip_merge``), with its operating point chosen again on the
calibration photos by the training's own rule, against the delta as it is; with ``--held-out``, then both on the
held-out photos as `dogsearch eval detect` measures them. ``--out DIR`` writes the flip delta (the shipped head's
files, config.json with ``"flip": true`` and the new point) for `dogsearch eval detect --weights DIR`. Prints JSON.

    python scripts/detector-flip.py [--held-out] [--out /tmp/det-flip]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dogsearch.eval import detect as E  # noqa: E402
from dogsearch.models import dogdet as D  # noqa: E402
from dogsearch.training.detector import data as T  # noqa: E402
from dogsearch.training.detector.rescore import mistakes  # noqa: E402
from dogsearch.training.detector.train import operating_point  # noqa: E402

DATA = Path("../shared/data")


def calibrate(detector: D.CenterNetDetector, labelled: list, negatives: list) -> dict:
    """As ``train.calibrate`` for the shipped score's exponents, on the photos themselves (not cached features)."""
    samples = [*labelled, *negatives]
    found, verified = [], []
    for s in samples:
        f = [c for c in detector.candidates(s.image) if c[1] >= detector.config["operating_point"]["candidate"]]
        f = f[: 2 * detector.max_dogs]
        p = [c.dog for c in detector.classify_crops(s.image, [box for box, _ in f])]
        found.append(f)
        verified.append([(box, D.score_of(head, q, detector.p_weight)) for (box, head), q in zip(f, p, strict=True)])
    truths = [s.boxes for s in samples]
    point = operating_point([(v, t) for v, t in zip(verified, truths, strict=True) if t],
                            [v for v, t in zip(verified, truths, strict=True) if not t])
    answered = [D.suppress_parts([v for v in f if v[1] >= point], detector.inside)[: detector.max_dogs]
                for f in verified]
    return {"verified": point, "mistakes": mistakes([{"truth": t} for t in truths], answered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=D.DEFAULT_WEIGHTS_DIR)
    parser.add_argument("--held-out", action="store_true")
    parser.add_argument("--out", type=Path, help="write the flip delta here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    labelled = T.labelled_samples(DATA / "dogpose", [DATA / "imagewoof"], "calibrate")
    negatives = T.negative_samples([DATA / "not-dogs", DATA / "oxford-pets/cats"], "calibrate")
    shipped = D.CenterNetDetector(args.weights)
    config = shipped.config
    report = {"calibration_photos": {"dogs": len(labelled), "without_a_dog": len(negatives)}}
    detectors = {}
    for flip in (False, True):
        detector = D.CenterNetDetector(args.weights, config={**config, "flip": flip}, head=shipped.head)
        chosen = calibrate(detector, labelled, negatives)
        detector.min_score = chosen["verified"]
        detector.config = {**detector.config, "operating_point": {**config["operating_point"],
                                                                  "verified": chosen["verified"]}}
        report["flip" if flip else "shipped"] = {"calibration": chosen}
        detectors[flip] = detector
        print(json.dumps({"flip": flip, **chosen}), file=sys.stderr, flush=True)
    if args.out:
        shutil.copytree(args.weights, args.out, dirs_exist_ok=True)
        out_config = {**config, "flip": True, "calibration_mistakes": report["flip"]["calibration"]["mistakes"],
                      "operating_point": {**config["operating_point"],
                                          "verified": report["flip"]["calibration"]["verified"]}}
        (args.out / "config.json").write_text(json.dumps(out_config, indent=2) + "\n")
    if args.held_out:
        unlabelled = E.read_unlabelled("docs/detection-unlabelled-dogs.txt")
        for flip, detector in detectors.items():
            result = E.evaluate(detector, DATA / "dogpose", negatives=[DATA / "not-dogs", DATA / "oxford-pets/cats"],
                                image_dirs=[DATA / "imagewoof"], split="held-out", unlabelled=unlabelled)
            report["flip" if flip else "shipped"]["held_out"] = result
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
