"""`dogsearch eval detect DIR`: how well a dog detector boxes the dogs, and how often it boxes one where there is none.

On labelled photos (DIR/images/<id>.jpg + DIR/labels/<id>.txt, YOLO-pose, one line a dog): precision, recall and
AP@0.5 of the dog boxes. On folders of photos without a dog: the false-positive rate, the share of photos with
any dog box. A dog box is a detection scored above ``FALLBACK_SCORE``: the whole photo with that score is what a
detector answers when it finds nothing (``models/detect.py``), so it counts as "no dog found". A detector with an
operating point of its own (``min_score``: the trained one) answers only boxes at or above it, and each counts.

``--split held-out`` measures on the photos a trained detector never saw (``split_of``: a hash of the file name).
"""
from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from dogsearch.core.boxes import iou as box_iou
from dogsearch.core.images import PHOTO_SUFFIXES
from dogsearch.models.detect import FALLBACK_SCORE, Detection, Detector
from dogsearch.pose.labels import parse_label_file

Box = Sequence[float]  # x1 y1 x2 y2, pixels

SPLITS = ("all", "train", "held-out")
HELD_OUT_FROM = 70  # buckets 70-99 of 100: the photos a trained detector never sees, ~30 %


def bucket(path: str | Path) -> int:
    """A photo's bucket, 0-99, from the sha256 of its file name (not its folder: the same photo named the same
    lands in the same bucket wherever it is copied). Trained detectors train on buckets below ``HELD_OUT_FROM``."""
    return int.from_bytes(hashlib.sha256(Path(path).name.encode()).digest()[:8], "big") % 100


def split_of(path: str | Path) -> str:
    """"train" or "held-out": the one rule every detector's training and `eval detect --split` use."""
    return "held-out" if bucket(path) >= HELD_OUT_FROM else "train"


def in_split(path: str | Path, split: str) -> bool:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    return split == "all" or split_of(path) == split


def dog_boxes(detections: Iterable[Detection], min_score: float | None = None) -> list[Detection]:
    """The detections that claim a dog: scored at or above the detector's operating point (``min_score``), or
    without one, above ``FALLBACK_SCORE`` (the whole-image fallback is "none found")."""
    if min_score is None:
        return [d for d in detections if d.score > FALLBACK_SCORE]
    return [d for d in detections if d.score >= min_score]


def operating_point(detector: Detector) -> float | None:
    """The score from which the detector's boxes claim a dog (the lower point of its second look where it takes
    one: ``dogdet.CenterNetDetector.second_look``); None: it has none (above ``FALLBACK_SCORE``)."""
    value = getattr(detector, "min_score", None)
    if value is None:
        return None
    look = getattr(detector, "look", None) if getattr(detector, "look_again", False) else None
    return float(min(value, look["score"])) if look else float(value)


def match(detections: Sequence[Detection], truth: Sequence[Box], iou: float = 0.5) -> list[tuple[float, bool]]:
    """(score, true positive) for each detection of one photo: greedy by score, each to the unmatched labelled box
    it overlaps most at IoU >= ``iou``; a labelled box is matched at most once, so a duplicate is a false positive."""
    free = set(range(len(truth)))
    out = []
    for det in sorted(detections, key=lambda d: -d.score):
        overlaps = [(box_iou(det.box, truth[j]), j) for j in sorted(free)]
        best, j = max(overlaps, default=(0.0, -1))
        hit = best >= iou
        if hit:
            free.discard(j)
        out.append((det.score, hit))
    return out


def off_labels(box: Box, truth: Sequence[Box], iou: float = 0.5) -> bool:
    """A box on none of the labelled dogs: under ``iou`` with each and less than half of it inside any (a box of a
    labelled dog's head or half lies inside it: that is a wrong box, not another dog)."""
    from dogsearch.core.boxes import area

    def inside(t: Box) -> float:
        return area((max(box[0], t[0]), max(box[1], t[1]), min(box[2], t[2]), min(box[3], t[3]))) / max(area(box), 1e-9)

    return all(box_iou(box, t) < iou and inside(t) < 0.5 for t in truth)


def read_unlabelled(path: str | Path) -> set[str]:
    """Photo ids (file stems), one a line, ``#`` comments: photos with dogs their labels lack."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return {line for line in lines if line}


def average_precision(scored: Iterable[tuple[float, bool]], n_truth: int) -> float:
    """All-point interpolated AP (VOC 2010+): the area under the precision-recall curve of the detections sorted
    by score, each precision replaced by the best at any higher recall."""
    if n_truth == 0:
        return 0.0
    hits = np.array([hit for _, hit in sorted(scored, key=lambda s: -s[0])], dtype=np.float64)
    if hits.size == 0:
        return 0.0
    tp = np.cumsum(hits)
    recall = np.concatenate([[0.0], tp / n_truth, [1.0]])
    precision = np.concatenate([[0.0], tp / np.arange(1, hits.size + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


@dataclass
class DetectionCounts:
    """Detections of many photos against their labelled boxes."""

    iou: float = 0.5
    min_score: float | None = None
    n_images: int = 0
    n_dogs: int = 0
    fallback_images: int = 0
    ignored: int = 0
    scored: list[tuple[float, bool]] = field(default_factory=list)

    def add(self, detections: Sequence[Detection], truth: Sequence[Box], unlabelled_dogs: bool = False) -> None:
        """``unlabelled_dogs``: the photo shows dogs its labels lack, so a box on none of the labelled dogs
        (``off_labels``) is neither right nor wrong: it is left out (counted in ``ignored``)."""
        found = dog_boxes(detections, self.min_score)
        self.n_images += 1
        self.n_dogs += len(truth)
        self.fallback_images += not found
        if unlabelled_dogs:
            kept = [d for d in found if not off_labels(d.box, truth, self.iou)]
            self.ignored += len(found) - len(kept)
            found = kept
        self.scored.extend(match(found, truth, self.iou))

    def summary(self) -> dict:
        tp = sum(hit for _, hit in self.scored)
        n = len(self.scored)
        return {
            "n_images": self.n_images,
            "n_dogs": self.n_dogs,
            "n_detections": n,
            "true_positives": tp,
            "precision": round(tp / n, 4) if n else None,  # None: no box claimed a dog
            "recall": round(tp / self.n_dogs, 4) if self.n_dogs else None,
            "ap": round(average_precision(self.scored, self.n_dogs), 4),
            "no_dog_found": self.fallback_images,
            "ignored": self.ignored,
        }


def sample(items: list, limit: int | None) -> list:
    """At most ``limit`` items spread evenly over the sorted list, so a limited run still sees every class."""
    if not limit or limit >= len(items):
        return items
    return [items[i * len(items) // limit] for i in range(limit)]


def find_labelled(directory: Path, image_dirs: Sequence[Path] = ()) -> list[tuple[Path, Path]]:
    """(image, label) pairs: labels/<id>.txt with <id>.<jpg|png> from DIR/images or any of ``image_dirs``
    (searched recursively; dogpose keeps most of its photos in ../imagewoof)."""
    images: dict[str, Path] = {}
    for root in (directory / "images", *image_dirs):
        for path in sorted(Path(root).rglob("*")):
            if path.suffix.lower() in PHOTO_SUFFIXES:
                images.setdefault(path.stem, path)
    labels = sorted((directory / "labels").glob("*.txt"))
    if not labels:
        raise ValueError(f"no label files in {directory / 'labels'}")
    missing = [label.stem for label in labels if label.stem not in images]
    if missing:
        raise ValueError(f"{len(missing)} of {len(labels)} labels have no photo under {directory / 'images'} or "
                         f"--images (e.g. {', '.join(missing[:3])})")
    return [(images[label.stem], label) for label in labels]


def find_photos(directory: Path) -> list[Path]:
    photos = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not photos:
        raise ValueError(f"no photos under {directory}")
    return photos


def _load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


class _Timer:
    """Milliseconds per detector call; the first is left out (it pays for lazy initialisation)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.calls = 0

    def detect(self, detector: Detector, image: Image.Image) -> list[Detection]:
        start = time.perf_counter()
        found = detector.detect(image)
        if self.calls:
            self.times.append(time.perf_counter() - start)
        self.calls += 1
        return found

    def ms(self) -> float | None:
        return round(1000 * float(np.mean(self.times)), 1) if self.times else None


def evaluate_labelled(detector: Detector, directory: Path, *, image_dirs: Sequence[Path] = (), iou: float = 0.5,
                      limit: int | None = None, split: str = "all", unlabelled: set[str] | None = None,
                      progress=lambda items, _: items) -> dict:
    """The box metrics; with ``unlabelled`` (photo ids with dogs their labels lack) once more in ``labelled_only``,
    the boxes on none of the labelled dogs of those photos left out."""
    counts, timer = DetectionCounts(iou=iou, min_score=operating_point(detector)), _Timer()
    only = DetectionCounts(iou=iou, min_score=operating_point(detector))
    pairs = [(image, label) for image, label in find_labelled(directory, image_dirs) if in_split(image, split)]
    if not pairs:
        raise ValueError(f"no {split} labelled photos in {directory}")
    for image_path, label in progress(sample(pairs, limit), "labelled"):
        image = _load(image_path)
        truth = [d.box.tolist() for d in parse_label_file(label, image.width, image.height)]
        found = timer.detect(detector, image)
        counts.add(found, truth)
        only.add(found, truth, unlabelled_dogs=label.stem in (unlabelled or ()))
    out = {"dir": str(directory), **counts.summary(), "ms_per_image": timer.ms()}
    if unlabelled is not None:
        out["labelled_only"] = {**only.summary(), "photos_with_unlabelled_dogs": len(unlabelled)}
    return out


def evaluate_negatives(detector: Detector, directory: Path, *, limit: int | None = None, split: str = "all",
                       progress=lambda items, _: items) -> dict:
    timer, with_dog, min_score = _Timer(), 0, operating_point(detector)
    photos = sample([p for p in find_photos(directory) if in_split(p, split)], limit)
    if not photos:
        raise ValueError(f"no {split} photos under {directory}")
    for path in progress(photos, Path(directory).name):
        with_dog += bool(dog_boxes(timer.detect(detector, _load(path)), min_score))
    return {"dir": str(directory), "n_images": len(photos), "images_with_dog_box": with_dog,
            "fp_rate": round(with_dog / len(photos), 4), "ms_per_image": timer.ms()}


def evaluate(detector: Detector, directory: Path, *, negatives: Sequence[Path] = (), image_dirs: Sequence[Path] = (),
             iou: float = 0.5, limit: int | None = None, split: str = "all", unlabelled: set[str] | None = None,
             progress=lambda items, _: items) -> dict:
    """The whole `eval detect` answer: the labelled photos' box metrics, each negatives folder's false positives,
    on the photos of ``split`` ("all", "train" or "held-out", by ``split_of``)."""
    in_split("", split)  # a wrong split name fails before any photo is read
    labelled = evaluate_labelled(detector, Path(directory), image_dirs=image_dirs, iou=iou, limit=limit,
                                 split=split, unlabelled=unlabelled, progress=progress)
    negative = [evaluate_negatives(detector, Path(d), limit=limit, split=split, progress=progress)
                for d in negatives]
    n_neg = sum(n["n_images"] for n in negative)
    return {
        "detector": detector.name,
        "iou": iou,
        "split": split,
        # boxes scored at or above the detector's operating point claim a dog; without one, above the fallback's
        "min_score": operating_point(detector),
        "fallback_score": FALLBACK_SCORE,
        "labelled": labelled,
        "negatives": negative,
        "fp_rate": round(sum(n["images_with_dog_box"] for n in negative) / n_neg, 4) if n_neg else None,
    }
