"""Choose a fusion of the fine-tuned ViT with the ImageNet CNN (``dogsearch/models/fusion.py``) on validation
splits, optionally with a learned linear projection to keep the vector small, and report every set.

Sets (``SETS``; photos cached once per ViT under the cache folder, ``features.py``):
* validation, to choose by: ``oxford_val`` (4 of Oxford-IIIT Pet's 13 dog breeds, ``splits.unseen_breed_split``),
  ``iw_val`` (40 a breed of Imagewoof train's val photos), ``dfn_val`` (DogFaceNet's val dogs), ``body_val``
  (dog-id-body's val dogs: whole bodies);
* reported, never chosen by: ``oxford_heldout`` (the other 9 breeds), ``iw_dev``, ``dfn_heldout``, ``body_heldout``
  (dog-id-body's 25 held-out dogs), ``body`` (all 91 dog-id-body dogs, which no shipped model trained on);
* training (the projection only): ``iw_train`` (100 photos a breed by default), ``dfn_train`` (the train dogs, or a
  deterministic share of them), ``body_train`` (dog-id-body's 57 train dogs).

The validation score is the mean mAP of the validation sets: unseen breeds, the ten breeds, faces and whole bodies
count alike, and mAP (the whole ranking) is steadier than recall@1 on sets this small. Only weights that lower
no validation set's mAP by more than ``max_drop`` (0.005) against the ViT alone are candidates: the breed
probabilities pull dogs of one breed together, which helps breeds and, past some weight, hurts telling dogs apart.
"""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dogsearch.core.judged import JudgedPart, Rerank
from dogsearch.eval.retrieval import retrieval_metrics
from dogsearch.eval.splits import labelled_images, select
from dogsearch.models.fusion import combine, vit_part

VAL_SETS = ("oxford_val", "iw_val", "dfn_val", "body_val")
TRAIN_SETS = ("iw_train", "dfn_train", "body_train")


def set_items(name: str, data: Path, *, breed_val_per_label: int = 40, breed_per_label: int = 100,
              identity_share: int = 100) -> list[tuple[Path, str]]:
    """The (photo, label) pairs of set ``name`` under the data folder."""
    from dogsearch.training.embedder.features import label_subset, subsample

    oxford, woof, faces = data / "oxford-pets/dogs", data / "imagewoof", data / "dogfacenet"
    bodies = data / "dog-id-body"
    sets: dict[str, Callable[[], list]] = {
        "oxford": lambda: labelled_images(oxford),
        "oxford_val": lambda: select(labelled_images(oxford), "unseen-breed", "val"),
        "oxford_heldout": lambda: select(labelled_images(oxford), "unseen-breed", "heldout"),
        "iw_dev": lambda: labelled_images(woof / "dev"),
        "iw_val": lambda: subsample(select(labelled_images(woof / "train"), "breed", "val"), breed_val_per_label),
        "iw_train": lambda: subsample(select(labelled_images(woof / "train"), "breed", "train"), breed_per_label),
        "dfn_heldout": lambda: select(labelled_images(faces), "identity", "heldout"),
        "dfn_val": lambda: select(labelled_images(faces), "identity", "val"),
        "dfn_train": lambda: label_subset(select(labelled_images(faces), "identity", "train"), identity_share),
        "body": lambda: labelled_images(bodies),
        "body_train": lambda: select(labelled_images(bodies), "identity", "train"),
        "body_val": lambda: select(labelled_images(bodies), "identity", "val"),
        "body_heldout": lambda: select(labelled_images(bodies), "identity", "heldout"),
    }
    return sets[name]()


def subset(data: dict, keep: Sequence[tuple[Path, str]]) -> dict:
    """The rows of cached ``data`` for the photos in ``keep`` (a sub-split of a cached set)."""
    index = {p: i for i, p in enumerate(data["paths"])}
    rows = torch.tensor([index[str(p)] for p, _ in keep])
    return {"paths": [str(p) for p, _ in keep], "labels": [lab for _, lab in keep],
            **{k: data[k][rows] for k in ("vit", "cnn", "logits")}}


def fused(data: dict, weights: dict[str, float], projection: nn.Module | None = None) -> np.ndarray:
    with torch.no_grad():
        z = combine(data["vit"], data["cnn"], data["logits"], weights, projection)
        return F.normalize(z.float(), dim=1).numpy()


def evaluate(sets: dict[str, dict], weights: dict[str, float], projection: nn.Module | None = None,
             names: Sequence[str] | None = None, rerank: Rerank | None = None) -> dict[str, dict]:
    """Each set's metrics, ranked as a search ranks (with ``rerank``, its first dogs ranked again: judged.py)."""
    out = {}
    for name in names or sets:
        vectors = fused(sets[name], weights, projection)
        judged = None if rerank is None else _judged_part(vectors, weights, rerank)
        out[name] = {k: round(v, 4) for k, v in retrieval_metrics(vectors, sets[name]["labels"], judged=judged).items()}
    return out


def _judged_part(vectors: np.ndarray, weights: dict[str, float], rerank: Rerank) -> JudgedPart:
    """The ViT part of these unprojected ViT + breeds fusion vectors, as the served calibration has it
    (models/fusion.py vit_part), re-ranking by ``rerank``."""
    if weights.get("cnn") or not weights.get("breeds"):
        raise ValueError(f"a re-ranking reads a fusion of the ViT and the breeds alone, not {weights}")
    part = vit_part({"kind": "fusion", "fusion": {"weights": weights}}, vectors.shape[1])
    return JudgedPart(part["dims"], part["scale"], rerank)


def choose_rerank(sets: dict[str, dict], weights: dict[str, float], grid: Sequence[Rerank], floor: dict[str, float],
                  *, log: Callable[[dict], None] = lambda row: None) -> tuple[Rerank | None, list[dict]]:
    """The grid's re-ranking with the best validation score among those whose validation mAP stays at or above
    ``floor`` on every set (``choose_weights``'s rule), if it beats the chosen weights' own ranking (None: it
    does not); and every row tried."""
    plain = val_score(evaluate(sets, weights, names=VAL_SETS))
    rows = []
    for rerank in grid:
        metrics = evaluate(sets, weights, names=VAL_SETS, rerank=rerank)
        row = {"rerank": asdict(rerank), "val_score": round(val_score(metrics), 4), "val": metrics,
               "within_max_drop": all(metrics[n]["map"] >= floor[n] for n in VAL_SETS)}
        rows.append(row)
        log(row)
    kept = [(r, rerank) for r, rerank in zip(rows, grid, strict=True) if r["within_max_drop"]]
    best = max(kept, key=lambda pair: pair[0]["val_score"], default=None)
    return (best[1] if best is not None and best[0]["val_score"] > plain else None), rows


def rerank_grid(weights: Sequence[float], caps: Sequence[float], depth: int) -> list[Rerank]:
    return [Rerank(w, c, depth) for w, c in itertools.product(weights, caps)]


def val_score(metrics: dict[str, dict]) -> float:
    return float(np.mean([metrics[name]["map"] for name in VAL_SETS]))


def weight_grid(cnn: Sequence[float], breeds: Sequence[float]) -> list[dict[str, float]]:
    """Every pair of part weights (the ViT's is 1; 0 leaves a part out)."""
    return [{"vit": 1.0, "cnn": c, "breeds": b} for c, b in itertools.product(cnn, breeds)]


def floor_of(metrics: dict[str, dict], max_drop: float) -> dict[str, float]:
    """The lowest validation mAP per set a choice may reach: ``max_drop`` under the ViT alone's."""
    return {name: metrics[name]["map"] - max_drop for name in VAL_SETS}


def choose_weights(sets: dict[str, dict], grid: Sequence[dict[str, float]], *, max_drop: float = 0.005,
                   log: Callable[[dict], None] = lambda row: None) -> tuple[dict[str, float], list[dict]]:
    """The grid's weights with the best validation score among those that cost no validation set more than
    ``max_drop`` mAP against the ViT alone (a fusion must not buy unseen breeds with individual dogs), and every
    row tried. The ViT alone is always a candidate."""
    alone = {"vit": 1.0, "cnn": 0.0, "breeds": 0.0}
    rows = []
    for weights in [alone, *(w for w in grid if w != alone)]:
        metrics = evaluate(sets, weights, names=VAL_SETS)
        row = {"weights": weights, "val_score": round(val_score(metrics), 4), "val": metrics}
        floor = floor_of(rows[0]["val"] if rows else metrics, max_drop)
        row["within_max_drop"] = all(metrics[n]["map"] >= floor[n] for n in VAL_SETS)
        rows.append(row)
        log(row)
    best = max((r for r in rows if r["within_max_drop"]), key=lambda r: r["val_score"])
    return best["weights"], rows


# -- the learned projection ------------------------------------------------------------------------------------------


def pca_projection(x: torch.Tensor, out_dim: int) -> nn.Linear:
    """A bias-free linear map onto the top ``out_dim`` principal directions of ``x`` (not centred: cosine
    similarity of the outputs then approximates that of the inputs)."""
    _, _, v = torch.linalg.svd(x.float(), full_matrices=False)
    layer = nn.Linear(x.shape[1], out_dim, bias=False)
    with torch.no_grad():
        layer.weight.copy_(v[:out_dim])
    return layer


def _label_ids(labels: Sequence[str]) -> torch.Tensor:
    index = {name: i for i, name in enumerate(sorted(set(labels)))}
    return torch.tensor([index[x] for x in labels])


def train_projection(train: dict[str, dict], weights: dict[str, float], out_dim: int, *, epochs: int,
                     sets: dict[str, dict], lr: float = 1e-3, batch: int = 256, temperature: float = 0.07,
                     w_distill: float = 1.0, seed: int = 0, floor: dict[str, float] | None = None,
                     log: Callable[[dict], None] = lambda row: None) -> tuple[nn.Linear | None, list[dict]]:
    """PCA init, then supervised contrastive steps on the training sets' labels (breeds, dogs, and the ImageNet
    head's top breed as a pseudo-label on every photo) plus relational distillation from the full fused vector
    (to keep its neighbours). The epoch with the best validation score among those whose validation mAP stays at or
    above ``floor`` on every set (the rule ``choose_weights`` applies) is returned, None when no epoch does; epoch 0
    is PCA alone."""
    from dogsearch.training.embedder.losses import relational_distill, supcon

    torch.manual_seed(seed)
    rng = random.Random(seed)
    parts = [{k: v for k, v in d.items() if k in ("vit", "cnn", "logits")} for d in train.values()]
    full = [combine(p["vit"], p["cnn"], p["logits"], weights).float() for p in parts]
    labels = [_label_ids(d["labels"]) for d in train.values()]
    pseudo = [p["logits"][:, 151:269].argmax(1) for p in parts]  # ImageNet's domestic breeds
    layer = pca_projection(torch.cat(full), out_dim)
    best, best_state, history = -math.inf, None, []

    def keep_if_best(row: dict) -> None:
        nonlocal best, best_state
        metrics = evaluate(sets, weights, layer, names=VAL_SETS)
        score = val_score(metrics)
        row.update(val_score=round(score, 4), val=metrics,
                   within_max_drop=all(metrics[n]["map"] >= (floor or {}).get(n, -1.0) for n in VAL_SETS))
        history.append(row)
        log(row)
        if row["within_max_drop"] and score > best and not math.isclose(score, best):
            best, best_state = score, {k: v.clone() for k, v in layer.state_dict().items()}

    keep_if_best({"epoch": 0})
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=0.0)
    steps = max(len(f) for f in full) // batch + 1
    for epoch in range(1, epochs + 1):
        total = 0.0
        for _ in range(steps):
            loss = torch.zeros(())
            for x, y, q in zip(full, labels, pseudo, strict=True):
                idx = torch.tensor(rng.sample(range(len(x)), min(batch, len(x))))
                z = layer(x[idx])
                loss = loss + supcon(z, y[idx], temperature) + 0.5 * supcon(z, q[idx], temperature)
                loss = loss + w_distill * relational_distill(z, x[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        keep_if_best({"epoch": epoch, "loss": round(total / steps, 4)})
    if best_state is None:
        return None, history
    layer.load_state_dict(best_state)
    return layer.eval(), history
