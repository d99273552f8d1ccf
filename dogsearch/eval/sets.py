"""The sets every embedder choice here is made and checked on (scripts/query-expansion.py, scripts/whitening.py):
each set's whole-photo vectors and labels by name, "val: ..." to choose by, "held out: ..." to report, and with
``fit`` the training splits ("fit: ...") to fit on."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from dogsearch.eval.retrieval import dir_vectors
from dogsearch.eval.splits import identity_split, unseen_breed_split


def named_sets(model, data: Path, cache_dir: Path | None, *, fit: bool = False
               ) -> dict[str, tuple[np.ndarray, list[str]]]:
    def vectors(root: Path, kind: str, split: str = "all"):
        items, emb, _ = dir_vectors(model, root, kind, split=split, cache_dir=cache_dir)
        return emb, [label for _, label in items]

    def part(emb, labels, keep):
        rows = [i for i, label in enumerate(labels) if keep(label)]
        return emb[rows], [labels[i] for i in rows]

    oxford = vectors(data / "oxford-pets/dogs", "breed")
    bodies = vectors(data / "dog-id-body", "identity")
    fitted = {
        "fit: Imagewoof": vectors(data / "imagewoof/train", "breed", "train"),
        "fit: DogFaceNet": vectors(data / "dogfacenet", "identity", "train"),
        "fit: dog-id-body": part(*bodies, lambda d: identity_split(d) == "train"),
    } if fit else {}
    return {
        **fitted,
        "val: Imagewoof": vectors(data / "imagewoof/train", "breed", "val"),
        "val: DogFaceNet": vectors(data / "dogfacenet", "identity", "val"),
        "val: Oxford 4 breeds": part(*oxford, lambda b: unseen_breed_split(b) == "val"),
        "val: dog-id-body": part(*bodies, lambda d: identity_split(d) == "val"),
        "held out: Imagewoof dev": vectors(data / "imagewoof/dev", "breed"),
        "held out: DogFaceNet": vectors(data / "dogfacenet", "identity", "heldout"),
        "held out: Oxford 9 breeds": part(*oxford, lambda b: unseen_breed_split(b) == "heldout"),
        "held out: dog-id-body": part(*bodies, lambda d: identity_split(d) == "heldout"),
    }
