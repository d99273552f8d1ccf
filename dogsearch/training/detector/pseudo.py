"""Pseudo-labelled dogs: photos known to show a dog, boxed by a trained detector (the teacher).

dogpose labels 291 photos to fit the head on; Imagewoof's training photos hold thousands more dogs without boxes,
in more poses, sizes and scenes. The teacher's confident boxes label a draw of them. A photo where the teacher is
unsure of any box (a score between ``low`` and ``high``, once the boxes inside better ones are dropped as at
inference) is left out: training on it would tell the student that a dog the teacher half-saw is background.
The draw keeps to the split's "fit" part, so the calibration and held-out photos never enter it. Measured and not
kept in the shipped head: docs/detection.md, "Pseudo-labelled Imagewoof photos".
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from dogsearch.eval.detect import find_photos
from dogsearch.models import dogdet as D
from dogsearch.training.detector import data as T


def draw(directories: Sequence[Path], exclude: Iterable[str], limit: int) -> list[Path]:
    """Up to ``limit`` photos of the fit part from ``directories``, none named in ``exclude`` (the labelled photos),
    in the order of a hash of their names: a draw across every breed folder that does not change with the disk's
    order."""
    skip = set(exclude)
    paths = [p for d in directories for p in find_photos(d) if T.part_of(p) == "fit" and p.name not in skip]
    paths.sort(key=lambda p: hashlib.sha256(f"pseudo:{p.name}".encode()).hexdigest())
    return paths[:limit]


def label(teacher: D.CenterNetDetector, image, *, high: float, low: float) -> list[T.Box] | None:
    """The teacher's boxes of one photo, or None when it is unsure: its answer at the operating point ``low``
    (``detect``: boxes inside better ones dropped as at inference) is empty or holds a box scored under ``high``."""
    teacher.min_score = low  # answer the boxes it is unsure of too, to see them
    found = teacher.detect(image)
    if not found or any(d.score < high for d in found):
        return None
    return [tuple(float(v) for v in d.box) for d in found]


def pseudo_samples(teacher: D.CenterNetDetector, paths: Sequence[Path], *, high: float, low: float,
                   cache_dir: Path | None = None, log=print) -> tuple[list[T.Sample], dict]:
    """The photos the teacher boxes with confidence, as samples, and counts of what was kept and left out. The
    teacher's boxes are cached by its name, the photos and the thresholds."""
    key = hashlib.sha256(json.dumps([teacher.name, high, low, [p.name for p in paths]]).encode()).hexdigest()[:16]
    path = cache_dir / f"pseudo-{key}.json" if cache_dir else None
    boxes: dict[str, list | None]
    if path and path.is_file():
        boxes = json.loads(path.read_text())
        log(f"pseudo labels from {path}")
    else:
        boxes = {}
        for i, p in enumerate(paths):
            boxes[p.name] = label(teacher, T.load(p), high=high, low=low)
            if i % 200 == 0:
                log(f"pseudo labels {i + 1}/{len(paths)}")
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(boxes))
    samples = [T.Sample(T.load(p), [tuple(b) for b in boxes[p.name]], f"{p.name}:pseudo")
               for p in paths if boxes.get(p.name)]
    counts = {"drawn": len(paths), "kept": len(samples), "dogs": sum(len(s.boxes) for s in samples),
              "left_out": len(paths) - len(samples)}
    log(f"pseudo labels: {counts}")
    return samples, counts
