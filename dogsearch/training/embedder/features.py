"""Frozen-backbone feature cache: the base model's served embeddings of every photo, computed once.

Heads train on these (a frozen ViT/CNN forward is the slow part on CPU). Each cache file holds
paths, labels and (N, dim) float32 features: the L2-normalised vectors the base model serves, so
the head sees at training time exactly what it sees at serving time.
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from pathlib import Path

import torch

from dogsearch.eval.retrieval import embed_paths
from dogsearch.eval.splits import bucket, labelled_images, select


def subsample(items: list[tuple[Path, str]], per_label: int | None) -> list[tuple[Path, str]]:
    """At most ``per_label`` photos of each label, picked reproducibly."""
    if not per_label:
        return items
    groups: dict[str, list] = defaultdict(list)
    for item in items:
        groups[item[1]].append(item)
    rng = random.Random(0)
    out = []
    for label in sorted(groups):
        group = groups[label]
        out.extend(sorted(rng.sample(group, per_label)) if len(group) > per_label else group)
    return out


def label_subset(items: list[tuple[Path, str]], share: int) -> list[tuple[Path, str]]:
    """Only the labels in a deterministic ``share`` percent of all labels (100: all)."""
    if share >= 100:
        return items
    return [(p, lab) for p, lab in items if bucket(f"subset:{lab}") < share]


def cache_path(cache_dir: Path, model_id: str, root: Path, kind: str, split: str, per_label: int | None,
               label_share: int = 100) -> Path:
    tag = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:8]
    share = "" if label_share >= 100 else f"-share{label_share}"
    return Path(cache_dir) / model_id / f"{Path(root).name}-{tag}-{kind}-{split}-{per_label or 'all'}{share}.pt"


def load_or_extract(model, root: Path, kind: str, split: str, *, cache_dir: Path, per_label: int | None = None,
                    label_share: int = 100, batch_size: int = 32) -> dict:
    """{"paths", "labels", "features"} for ROOT's photos of one split, cached on disk."""
    path = cache_path(cache_dir, model.model_id, root, kind, split, per_label, label_share)
    if path.is_file():
        return torch.load(path, weights_only=False)
    items = select(labelled_images(root), kind, split)  # type: ignore[arg-type]
    items = subsample(label_subset(items, label_share), per_label)
    feats, _ = embed_paths(model, [p for p, _ in items], batch_size, desc=f"features {path.stem}")
    data = {"paths": [str(p) for p, _ in items], "labels": [lab for _, lab in items],
            "features": torch.from_numpy(feats)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(path)
    return data
