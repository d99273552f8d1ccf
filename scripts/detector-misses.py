"""Where a detector's missed dogs go (docs/detection.md, "Every training photo, the choices cross-fitted"): on a
candidates dump (`dogsearch train detector --folds K --dump-out-of-fold FILE`, or `train detector-rescore`'s), each
labelled dog that no box answered at ``--point`` matches at IoU 0.5 is put in one class: boxed but off (the
answered box nearest it at IoU 0.3-0.5, smaller or larger than the dog), a right candidate scored below the point, a
right candidate dropped by ``suppress_inside``, or no candidate near it. Also the size and IoU of the boxes that do
match. Prints JSON.

    python scripts/detector-misses.py /tmp/det/oof-noflip.json --point 0.7045
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dogsearch.core.boxes import area, iou  # noqa: E402
from dogsearch.training.detector import rescore as RS  # noqa: E402


def classify(truth: tuple, answered: list, scored: list, point: float) -> str:
    near = max(answered, key=lambda f: iou(f[0], truth), default=None)
    if near is not None and iou(near[0], truth) >= 0.3:
        return "boxed, smaller" if area(near[0]) < area(truth) else "boxed, larger"
    right = [s for b, s in scored if iou(b, truth) >= 0.5]
    if not right:
        return "no candidate near"
    return "suppressed" if max(right) >= point else "scored below the point"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dump", type=Path)
    parser.add_argument("--point", type=float, required=True, help="the operating point of the verified score")
    parser.add_argument("--p-weight", type=float, default=0.25, help="the dog probability's exponent in the score")
    parser.add_argument("--inside", type=float, default=0.6, help="suppress_inside")
    args = parser.parse_args()
    records = json.loads(args.dump.read_text())
    params = {"candidates": RS.DUMP_CANDIDATES, "verified": args.p_weight}
    missed, matched = Counter(), []
    for record, answered in zip(records, RS.answers(records, params, args.inside, args.point), strict=True):
        scored = RS.scored(record, params)
        for truth in map(tuple, record["truth"]):
            best = max(answered, key=lambda f: iou(f[0], truth), default=None)
            if best is not None and iou(best[0], truth) >= 0.5:
                box = best[0]
                matched.append(((box[2] - box[0]) / (truth[2] - truth[0]), (box[3] - box[1]) / (truth[3] - truth[1]),
                                iou(box, truth)))
            else:
                missed[classify(truth, answered, scored, args.point)] += 1
    m = np.asarray(matched)
    print(json.dumps({"dogs": sum(len(r["truth"]) for r in records), "missed": sum(missed.values()),
                      "missed_by_kind": dict(missed.most_common()),
                      "matched": {"n": len(m), "median_width_ratio": round(float(np.median(m[:, 0])), 3),
                                  "median_height_ratio": round(float(np.median(m[:, 1])), 3),
                                  "iou_quartiles": [round(float(q), 3) for q in np.percentile(m[:, 2], [25, 50, 75])]}},
                     indent=1))


if __name__ == "__main__":
    main()
