"""Deterministic data splits, by hashing ids, so every run (and every machine) agrees on them.

* DogFaceNet (one folder per dog): a dog is **held out** (never trained on; identity eval only) when
  its bucket is < 20, **val** (model selection during training) when 20 <= bucket < 30, else **train**.
  Whole dogs move together, so held-out dogs are never seen in training.
* Imagewoof train (one folder per breed): a photo is **val** when its bucket (of ``breed/file``) is < 10,
  else **train**. The held-out breed set is Imagewoof ``dev``, a separate folder.
* Breeds no model trained on (Oxford-IIIT Pet's dogs): whole breeds are split, a breed is **val** (to choose a
  fusion's weights by) when ``bucket("breed:" + breed) < 35``, else **heldout** (reported, never tuned on). Of
  Oxford's 13 dog breeds, 4 are val (american_bulldog, miniature_pinscher, pomeranian, scottish_terrier).

``bucket(key) = int(sha256("dogsearch-split:" + key)[:8], 16) % 100``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from dogsearch.core.images import PHOTO_SUFFIXES

Split = Literal["train", "val", "heldout"]


def bucket(key: str) -> int:
    return int(hashlib.sha256(f"dogsearch-split:{key}".encode()).hexdigest()[:8], 16) % 100


def identity_split(dog_id: str) -> Split:
    b = bucket(dog_id)
    return "heldout" if b < 20 else "val" if b < 30 else "train"


def breed_photo_split(breed: str, file_name: str) -> Split:
    return "val" if bucket(f"{breed}/{file_name}") < 10 else "train"


def unseen_breed_split(breed: str) -> Split:
    return "val" if bucket(f"breed:{breed}") < 35 else "heldout"


def labelled_images(root: Path) -> list[tuple[Path, str]]:
    """(path, label) for every image in ROOT/<label>/, sorted, so the order is stable."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in PHOTO_SUFFIXES and path.is_file():
                out.append((path, folder.name))
    return out


def select(items: Iterable[tuple[Path, str]], kind: Literal["breed", "identity", "unseen-breed"],
           split: Split | Literal["all"]) -> list[tuple[Path, str]]:
    """Keep the items of one split ('all' keeps everything). ``unseen-breed`` splits whole breeds."""
    if split == "all":
        return list(items)
    if kind == "identity":
        return [(p, lab) for p, lab in items if identity_split(lab) == split]
    if kind == "unseen-breed":
        return [(p, lab) for p, lab in items if unseen_breed_split(lab) == split]
    return [(p, lab) for p, lab in items if breed_photo_split(lab, p.name) == split]
