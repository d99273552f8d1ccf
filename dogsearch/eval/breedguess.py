"""How often the breed suggestion is right: top-1 / top-3 accuracy of ``DogClassifier``'s breeds on a folder of
breed folders (``DIR/<breed>/<photo>``).

A folder name is mapped to the ImageNet class the classifier names: a WordNet id (Imagewoof's folders) through
timm's ImageNetInfo, an Oxford-IIIT Pet breed through ``OXFORD_BREEDS``, else an ImageNet breed name written as
users write it ("golden retriever", "golden_retriever"). A breed with no ImageNet class is left out and listed.
With ``boxes`` (YOLO label files ``<stem>.txt``: ``class cx cy w h ...``, normalised) the labelled photos are
also classified as dog crops, the way the services crop a detected dog, so whole photos and crops can be compared.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from dogsearch.eval.splits import labelled_images

# Oxford-IIIT Pet's dog breeds -> ImageNet WordNet ids; None: ImageNet has no such class.
OXFORD_BREEDS: dict[str, str | None] = {
    "american_bulldog": None,
    "american_pit_bull_terrier": None,
    "basset_hound": "n02088238",  # basset
    "beagle": "n02088364",
    "boxer": "n02108089",
    "chihuahua": "n02085620",
    "english_cocker_spaniel": "n02102318",  # cocker spaniel
    "english_setter": "n02100735",
    "german_shorthaired": "n02100236",  # German short-haired pointer
    "great_pyrenees": "n02111500",
    "havanese": None,
    "japanese_chin": "n02085782",
    "keeshond": "n02112350",
    "leonberger": "n02111129",
    "miniature_pinscher": "n02107312",
    "newfoundland": "n02111277",
    "pomeranian": "n02112018",
    "pug": "n02110958",
    "saint_bernard": "n02109525",
    "samoyed": "n02111889",
    "scottish_terrier": "n02097298",  # Scotch terrier
    "shiba_inu": None,
    "staffordshire_bull_terrier": "n02093256",
    "wheaten_terrier": "n02098105",  # soft-coated wheaten terrier
    "yorkshire_terrier": "n02094433",
}
_WNID = re.compile(r"n\d{8}")


def breed_class(folder: str) -> int | None:
    """The ImageNet class index (one of ``dogclass.BREED_CLASSES``) that folder ``folder`` names, else None."""
    from timm.data import ImageNetInfo

    from dogsearch.models.dogclass import BREED_CLASSES, breed_name

    wnid = folder if _WNID.fullmatch(folder) else OXFORD_BREEDS.get(folder.lower())
    if wnid is not None:
        wnids = ImageNetInfo().label_names()
        index = wnids.index(wnid) if wnid in wnids else None
    else:
        wanted = folder.replace("_", " ").casefold()
        index = next((i for i in BREED_CLASSES if breed_name(i).casefold() == wanted), None)
    return index if index in BREED_CLASSES else None


def yolo_box(label_file: Path, width: int, height: int) -> tuple[float, float, float, float] | None:
    """The first box of a YOLO label file in pixels, or None when it has none."""
    for line in label_file.read_text().splitlines():
        values = line.split()
        if len(values) >= 5:
            cx, cy, w, h = (float(v) for v in values[1:5])
            return ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
    return None


def _accuracy(ranked: np.ndarray, truth: np.ndarray) -> dict:
    return {"top1": round(float((ranked[:, 0] == truth).mean()), 4),
            "top3": round(float((ranked[:, :3] == truth[:, None]).any(axis=1).mean()), 4), "n_images": len(truth)}


def ranked_breeds(probs: np.ndarray) -> np.ndarray:
    """(n, 1000) ImageNet probabilities -> (n, 119) breed class indices, likeliest first (as the suggestions rank
    them: renormalising over the breeds keeps the order)."""
    from dogsearch.models.dogclass import BREED_CLASSES

    classes = np.asarray(BREED_CLASSES)
    return classes[np.argsort(-probs[:, classes], axis=1, kind="stable")]


def evaluate(root: Path, probabilities: Callable[[list[Image.Image]], np.ndarray], *, boxes: Path | None = None,
             batch_size: int = 32, progress: Callable[[Sequence], Sequence] = lambda items: items) -> dict:
    """Top-1 / top-3 accuracy of the breed suggestions of ``probabilities`` (images -> (n, 1000)) on ROOT."""
    from dogsearch.core.boxes import crop
    from dogsearch.models.dogclass import breed_name

    items = labelled_images(root)
    classes = {label: breed_class(label) for label in sorted({lab for _, lab in items})}
    left_out = sorted(label for label, index in classes.items() if index is None)
    items = [(p, lab) for p, lab in items if classes[lab] is not None]
    if not items:
        raise ValueError(f"{root}: no breed folder maps to an ImageNet breed (left out: {', '.join(left_out)})")
    whole, crops, crop_rows = [], [], []
    for i in progress(range(0, len(items), batch_size)):
        images, cropped = [], []
        for row, (path, _) in enumerate(items[i:i + batch_size], start=i):
            with Image.open(path) as im:
                image = im.convert("RGB")
            images.append(image)
            label_file = boxes / f"{path.stem}.txt" if boxes is not None else None
            box = yolo_box(label_file, *image.size) if label_file is not None and label_file.is_file() else None
            if box is not None:
                cropped.append(crop(image, box))
                crop_rows.append(row)
        whole.append(probabilities(images))
        if cropped:
            crops.append(probabilities(cropped))
    ranked = ranked_breeds(np.concatenate(whole))
    truth = np.asarray([classes[lab] for _, lab in items])
    per_breed = defaultdict(list)
    for row, (_, label) in enumerate(items):
        per_breed[label].append(row)
    result = {
        "dir": str(root), **_accuracy(ranked, truth), "n_breeds": len(per_breed),
        "per_breed": {label: {"imagenet": breed_name(classes[label]), **_accuracy(ranked[rows], truth[rows])}
                      for label, rows in per_breed.items()},
        "left_out": left_out,
    }
    if boxes is not None:
        rows = np.asarray(crop_rows, dtype=int)
        result["crops"] = None if not crop_rows else {
            "whole": _accuracy(ranked[rows], truth[rows]),
            "crop": _accuracy(ranked_breeds(np.concatenate(crops)), truth[rows]),
        }
    return result
