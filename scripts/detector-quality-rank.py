"""Does a quality head rank a dog's whole box first (docs/detection.md, "A box-quality output")? On the calibration
photos (training split, buckets 55-69), the head alone (no verifier), for each quality weight w of the score
heat^(1-w) x quality^w: how often the photo's first candidate is right (IoU >= 0.5 with a labelled dog), how often
one of the first five is, and the best head score on photos without a dog (median, max).

    python scripts/detector-quality-rank.py DELTA_DIR [--data ../shared/data] [--cache-dir /tmp/detector-cache]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from dogsearch.core.boxes import iou
    from dogsearch.models import dogdet as D
    from dogsearch.training.detector import data as T
    from dogsearch.training.detector import train as TR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("delta", type=Path, help="a delta trained with a quality output")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache-dir", type=Path, help="the trunk's features, as `train detector --cache-dir`")
    args = parser.parse_args()
    torch.set_num_threads(1)
    labelled = T.labelled_samples(args.data / "dogpose", [args.data / "imagewoof"], "calibrate")
    negatives = T.negative_samples([args.data / "not-dogs", args.data / "oxford-pets" / "cats"], "calibrate")
    detector = D.CenterNetDetector(args.delta, verify=False)
    samples = [*labelled, *negatives]
    f16, f32, scales = TR.extract(samples, detector.input_size, args.cache_dir, log=lambda _: None)
    with torch.no_grad():
        outs = torch.cat(detector.head(f16.float(), f32.float()), dim=1)
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        detector.quality_weight = w
        found = [detector.boxes(out, scale, s.image.size) for out, scale, s in zip(outs, scales, samples, strict=True)]
        right = [[max(iou(box, t) for t in s.boxes) >= 0.5 for box, _ in f] for f, s in zip(found, labelled,
                                                                                             strict=False)]
        top = sorted(max([score for _, score in f], default=0.0) for f in found[len(labelled):])
        print(f"w={w}: first candidate right {sum(bool(r and r[0]) for r in right)}/{len(labelled)}, a right one "
              f"among 5: {sum(any(r[:5]) for r in right)}; photos without a dog: best head score median "
              f"{top[len(top) // 2]:.3f} max {top[-1]:.3f}")


if __name__ == "__main__":
    main()
