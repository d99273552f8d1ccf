"""Train the detector's head on cached frozen-trunk features, choose its operating points, write the delta.

1. The training set (``data.training_set``: "fit" photos, mirrors, compositions) is letterboxed and run through
   the frozen trunk once; the features are cached (fp16) under ``cache_dir``.
2. The head learns CenterNet's targets: a Gaussian peak at each dog's centre cell (focal loss), the log box size
   and the centre's offset in that cell (L1), for minutes on a CPU.
3. The operating points come from the "calibrate" photos (training split, never fitted): the score threshold that
   makes the fewest mistakes there (missed dogs + wrong boxes + photos without a dog given a box), once for the
   raw heat and once for the verified score; the middle of the best interval, so a flat optimum is not cut at its
   edge.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from dogsearch.models import dogdet as D
from dogsearch.training.detector import data as T

CANDIDATE_HEAT = 0.05
# A box with 60 % of its area inside a better box is dropped at inference (models/dogdet.py suppress_parts): on the
# calibration photos 0.6 made the fewest mistakes of none / 0.6 / 0.8 (docs/detection.md, error analysis: head and
# front-half boxes inside the dog's own box were 25 of the 32 wrong boxes on held-out photos). The operating points
# are chosen on the boxes before it: chosen after it, they fell to a flat optimum (0.42-0.51) that boxed a photo
# without a dog on held-out photos, where nothing recovers a false dog (a missed one is found whole by the embedder).
SUPPRESS_INSIDE = 0.6


def targets(boxes: Sequence[T.Box], scale: float, input_size: int) -> tuple[torch.Tensor, ...]:
    """CenterNet targets on the stride-16 grid: heat (1, g, g), log size (2, g, g), offset (2, g, g), mask (g, g)."""
    g = input_size // D.STRIDE
    heat = torch.zeros(1, g, g)
    size, offset, mask = torch.zeros(2, g, g), torch.zeros(2, g, g), torch.zeros(g, g)
    ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32),
                            indexing="ij")
    for x0, y0, x1, y1 in boxes:
        x0, y0, x1, y1 = (v * scale for v in (x0, y0, x1, y1))
        w, h = x1 - x0, y1 - y0
        if w < 2 or h < 2:
            continue
        cx, cy = (x0 + x1) / 2 / D.STRIDE, (y0 + y1) / 2 / D.STRIDE
        i, j = min(g - 1, int(cy)), min(g - 1, int(cx))
        sx, sy = max(0.5, w / D.STRIDE / 6), max(0.5, h / D.STRIDE / 6)
        peak = torch.exp(-((xs - j) ** 2) / (2 * sx * sx) - ((ys - i) ** 2) / (2 * sy * sy))
        heat[0] = torch.maximum(heat[0], peak)
        heat[0, i, j] = 1.0
        size[:, i, j] = torch.tensor([math.log(w / input_size), math.log(h / input_size)])
        offset[:, i, j] = torch.tensor([cx - j, cy - i])
        mask[i, j] = 1.0
    return heat, size, offset, mask


def extract(samples: Sequence[T.Sample], input_size: int, cache_dir: Path | None,
            batch: int = 32, log=print) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Frozen-trunk features of every sample (cached by the samples' sources and sizes)."""
    key = hashlib.sha256(json.dumps([input_size, [(s.source, s.image.size, s.boxes) for s in samples]])
                         .encode()).hexdigest()[:16]
    path = cache_dir / f"features-{key}.pt" if cache_dir else None
    scales = [input_size / max(s.image.size) for s in samples]
    if path and path.is_file():
        f16, f32 = torch.load(path, weights_only=True)
        log(f"features from {path}")
        return f16, f32, scales
    trunk = D.Trunk()
    f16s, f32s = [], []
    start = time.monotonic()
    for i in range(0, len(samples), batch):
        x = torch.stack([D.letterbox(s.image, input_size)[0] for s in samples[i:i + batch]])
        with torch.inference_mode():
            a, b = trunk(x)
        f16s.append(a.half())
        f32s.append(b.half())
        if i // batch % 10 == 0:
            log(f"features {i + len(x)}/{len(samples)} ({time.monotonic() - start:.0f} s)")
    f16, f32 = torch.cat(f16s), torch.cat(f32s)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save((f16, f32), path)
    return f16, f32, scales


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, summed over the batch and divided by its number of dogs."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def fit_head(f16: torch.Tensor, f32: torch.Tensor, target: Sequence[torch.Tensor], *, width: int, epochs: int,
             batch_size: int, lr: float, seed: int, log=print) -> D.CenterHead:
    torch.manual_seed(seed)
    heat_t, size_t, off_t, mask_t = target
    head = D.CenterHead(width=width)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    n = f16.shape[0]
    steps = epochs * math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        head.train()
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            a = F.dropout2d(f16[idx].float(), 0.1)  # features dropped a channel at a time: less memorising
            b = F.dropout2d(f32[idx].float(), 0.1)
            heat, size, off = head(a, b)
            m = mask_t[idx].unsqueeze(1)
            n_pos = m.sum().clamp(min=1.0)
            loss = (focal_loss(heat, heat_t[idx]) + (F.l1_loss(size, size_t[idx], reduction="none") * m).sum()
                    / n_pos + (F.l1_loss(off, off_t[idx], reduction="none") * m).sum() / n_pos)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if epoch % 5 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs} loss {total / n:.4f}")
    return head.eval()


def operating_point(labelled: Sequence[tuple[list, list]], negatives: Sequence[list], iou: float = 0.5) -> float:
    """The threshold with the fewest mistakes on (scored boxes, true boxes) photos and scored boxes of photos
    without a dog: missed dogs + boxes that match no dog (or a matched one again) + negative photos with a box.
    The middle of the best interval of candidate thresholds."""
    from dogsearch.eval.detect import match
    from dogsearch.models.detect import Detection

    scores = sorted({s for found, _ in labelled for _, s in found} | {s for found in negatives for _, s in found})
    cuts = [0.0] + [(a + b) / 2 for a, b in zip(scores, scores[1:], strict=False)] + [1.0]
    matched = [(match([Detection(b, s) for b, s in found], truth, iou), len(truth)) for found, truth in labelled]

    def mistakes(t: float) -> int:
        bad = 0
        for scored, n_truth in matched:
            kept = [hit for s, hit in scored if s >= t]
            bad += (n_truth - sum(kept)) + (len(kept) - sum(kept))
        return bad + sum(any(s >= t for _, s in found) for found in negatives)

    return best_threshold(cuts, [mistakes(t) for t in cuts])


def best_threshold(cuts: Sequence[float], errors: Sequence[int]) -> float:
    """The middle of the longest run of consecutive ``cuts`` with the fewest ``errors``: a flat optimum is not cut
    at its edge."""
    best = min(errors)
    runs: list[list[int]] = []
    for i, e in enumerate(errors):
        if e == best:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    longest = max(runs, key=lambda r: cuts[r[-1]] - cuts[r[0]])
    return round((cuts[longest[0]] + cuts[longest[-1]]) / 2, 4)


def calibrate(detector: D.CenterNetDetector, labelled: Sequence[T.Sample], negatives: Sequence[T.Sample],
              log=print) -> dict:
    """Operating points for the raw heat and the verified score, from photos the head was not fitted on (before
    boxes inside better ones are dropped: ``SUPPRESS_INSIDE``)."""
    raw_lab, ver_lab, raw_neg, ver_neg = [], [], [], []
    verifier = D.CenterNetDetector(head=detector.head, config=detector.config, verify=True)
    for sample in (*labelled, *negatives):
        found = [f for f in detector.candidates(sample.image) if f[1] >= CANDIDATE_HEAT][:2 * detector.max_dogs]
        verified = verifier.score(sample.image, found)
        if sample.boxes:
            raw_lab.append((found, sample.boxes))
            ver_lab.append((verified, sample.boxes))
        else:
            raw_neg.append(found)
            ver_neg.append(verified)
    point = {"raw": operating_point(raw_lab, raw_neg), "verified": operating_point(ver_lab, ver_neg),
             "candidate": CANDIDATE_HEAT}
    log(f"operating points {point} from {len(labelled)} calibration dog photos, {len(negatives)} without a dog")
    return point


def train(dog_dir: Path, image_dirs: Sequence[Path], negative_dirs: Sequence[Path], out: Path, *,
          input_size: int = 256, width: int = 64, epochs: int = 20, batch_size: int = 32, lr: float = 2e-3,
          seed: int = 0, threads: int = 2, cache_dir: Path | None = None,
          suppress_inside: float | None = SUPPRESS_INSIDE, log=print) -> dict:
    torch.set_num_threads(threads)
    random.seed(seed)
    started = time.monotonic()
    dogs = T.labelled_samples(dog_dir, image_dirs, "fit")
    negatives = T.negative_samples(negative_dirs, "fit")
    samples = T.training_set(dogs, negatives, seed=seed)
    log(f"{len(dogs)} dog photos, {len(negatives)} without a dog -> {len(samples)} training samples")
    f16, f32, scales = extract(samples, input_size, cache_dir, log=log)
    per = [targets(s.boxes, sc, input_size) for s, sc in zip(samples, scales, strict=True)]
    target = [torch.stack([p[k] for p in per]) for k in range(4)]
    config = {"name": out.name, "input_size": input_size, "width": width, "stride": D.STRIDE,
              "operating_point": {"raw": 0.5, "verified": 0.5, "candidate": CANDIDATE_HEAT},
              "suppress_inside": suppress_inside}
    head = fit_head(f16, f32, target, width=width, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, log=log)
    detector = D.CenterNetDetector(head=head, config=config, verify=False)
    config["operating_point"] = calibrate(detector, T.labelled_samples(dog_dir, image_dirs, "calibrate"),
                                          T.negative_samples(negative_dirs, "calibrate"), log=log)
    minutes = round((time.monotonic() - started) / 60, 1)
    config.update({
        "trunk": "efficientnet_lite0 (package ImageNet weights, frozen; blocks[4] and conv_head)",
        "recipe": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                   "optimizer": "AdamW wd 1e-4, one-cycle", "loss": "CenterNet focal + L1 log size + L1 offset",
                   "feature_dropout": 0.1, "split": "eval.detect.split_of; fit = bucket < 55, calibrate 55-69"},
        "data": {"fit_dog_photos": len(dogs), "fit_negative_photos": len(negatives),
                 "training_samples": len(samples), "training_dogs": sum(len(s.boxes) for s in samples)},
        "train_minutes": minutes,
    })
    write(out, head, config)
    return config


def write(out: Path, head: D.CenterHead, config: dict) -> None:
    from safetensors.torch import save_file

    from dogsearch.models.weights import sha256_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "head.safetensors"))
    config["files"] = {"head.safetensors": sha256_file(out / "head.safetensors")}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

