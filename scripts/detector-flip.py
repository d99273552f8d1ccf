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
from dogsearch.training.detector.train import candidates, choose_score  # noqa: E402

DATA = Path("../shared/data")


def calibrate(detector: D.CenterNetDetector, samples: list) -> dict:
    """The training's own choice (``train.candidates`` + ``train.choose_score``) of the shipped score's operating
    point, on the photos' features computed afresh."""
    grid = ((detector.quality_weight, detector.p_weight),)
    scored = candidates(detector, samples, grid=grid, flip=detector.config.get("flip", False), log=lambda _: None)
    chosen = choose_score(scored, [s.boxes for s in samples], detector, grid, "the calibration photos",
                          log=lambda _: None)
    return {"verified": chosen["operating_point"]["verified"], "mistakes": chosen["mistakes"]}


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
        chosen = calibrate(detector, [*labelled, *negatives])
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
