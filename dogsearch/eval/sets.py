"""The sets every embedder choice here is made and checked on (scripts/query-expansion.py, scripts/whitening.py,
scripts/k-reciprocal.py): each set's whole-photo vectors and labels by name, "val: ..." to choose by, "held out: ..."
to report, and with ``fit`` the training splits ("fit: ...") to fit on."""
from __future__ import annotations

from collections.abc import Callable, Hashable
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


def choose_keeping_r1(rows: dict[Hashable, dict[str, dict]], plain: Hashable,
                      describe: Callable[[Hashable], str]) -> Hashable:
    """The setting of `rows` ({setting: {set name: metrics}}) with the best mean validation mAP among those that cost
    no validation set any R@1 against `plain`'s; prints every setting's rows (`describe` names a setting) and marks
    the choice."""
    vals = [name for name in rows[plain] if name.startswith("val")]
    allowed = [key for key, row in rows.items()
               if all(row[v]["recall@1"] >= rows[plain][v]["recall@1"] for v in vals)]
    chosen = max(allowed, key=lambda key: np.mean([rows[key][v]["map"] for v in vals]))
    for key, row in rows.items():
        mark = " (chosen)" if key == chosen else "" if key in allowed else " (costs a val R@1)"
        print(f"{describe(key)}: mean val mAP {np.mean([row[v]['map'] for v in vals]):.4f}{mark}")
        for name, m in row.items():
            print(f"  {name:28} {m['recall@1']:.3f} / {m['recall@5']:.3f} / {m['recall@10']:.3f} / {m['map']:.3f}")
    return chosen
