"""Train the detector's head on cached frozen-trunk features, choose its operating points, write the delta.

1. The training set (``data.training_set``: "fit" photos, mirrors, compositions) is letterboxed and run through
   the frozen trunk once; the features are cached (fp16) under ``cache_dir``.
2. The head learns CenterNet's targets: a Gaussian peak at each dog's centre cell (focal loss), the log box size
   and the centre's offset in that cell (L1; or GIoU of the decoded box), for minutes on a CPU; optionally a
   quality output too, the IoU of the box decoded at each cell (``fit_head``, or ``fit_quality`` on a trained
   head kept as it is).
3. The operating points (and a quality head's score exponents, ``SCORE_GRID``; the flip test or not) come from
   photos the head was not fitted on: the "calibrate" photos (training split, never fitted), or with ``folds`` every
   training-split photo scored by heads fitted on the other folds. The score threshold that makes the fewest
   mistakes there (missed dogs + wrong boxes + photos without a dog given a box), once for the raw heat and once
   for the verified score; the middle of the best interval, so a flat optimum is not cut at its edge.
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

from dogsearch.eval.detect import find_labelled
from dogsearch.models import dogdet as D
from dogsearch.training.detector import data as T

CANDIDATE_HEAT = 0.05
# A box with 60 % of its area inside a better box is dropped at inference (models/dogdet.py suppress_parts): on the
# calibration photos 0.6 made the fewest mistakes of none / 0.6 / 0.8 (docs/detection.md, error analysis: head and
# front-half boxes inside the dog's own box were 25 of the 32 wrong boxes on held-out photos). The operating points
# are chosen on the boxes before it: chosen after it, they fell to a flat optimum (0.42-0.51) that boxed a photo
# without a dog on held-out photos, where nothing recovers a false dog (a missed one is found whole by the embedder).
SUPPRESS_INSIDE = 0.6
# the quality output's loss at cells outside every dog's box: a peak there is rare and the heat and the verifier
# already reject it; inside a dog's box is where its head and its whole body compete
OUTSIDE_WEIGHT = 0.1
# (quality weight, p weight) tried on the calibration photos for a quality head: score = head^(1 - c) x p^c with
# head = heat^(1 - w) x quality^w (dogdet.head_score, score_of); (0, 0.5) is the heat-only detector's sqrt(heat x p)
SCORE_GRID = tuple((w, c) for w in (0.0, 0.25, 0.5, 0.75, 1.0) for c in (0.5, 0.25, 0.75))


def targets(boxes: Sequence[T.Box], scale: float, input_size: int, spread: int = 0) -> tuple[torch.Tensor, ...]:
    """CenterNet targets on the stride-16 grid: heat (1, g, g), log size (2, g, g), offset (2, g, g), mask (g, g),
    and the box itself in input pixels (4, g, g: for a loss on the decoded box). The box is regressed at its centre
    cell and, with ``spread``, at the cells up to ``spread`` away too (their offsets reach the centre from there; a
    cell another dog's centre or nearer cell holds keeps that dog), so a peak one cell off still decodes the
    whole dog."""
    g = input_size // D.STRIDE
    heat = torch.zeros(1, g, g)
    size, offset, mask = torch.zeros(2, g, g), torch.zeros(2, g, g), torch.zeros(g, g)
    box = torch.zeros(4, g, g)
    ys, xs = torch.meshgrid(torch.arange(g, dtype=torch.float32), torch.arange(g, dtype=torch.float32),
                            indexing="ij")
    cells = []  # (distance from the centre cell, cell, the dog's values)
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
        dog = ([math.log(w / input_size), math.log(h / input_size)], cx, cy, [x0, y0, x1, y1])
        cells += [(max(abs(di), abs(dj)), (i + di, j + dj), dog) for di in range(-spread, spread + 1)
                  for dj in range(-spread, spread + 1) if 0 <= i + di < g and 0 <= j + dj < g]
    for _, (i, j), (log_size, cx, cy, xyxy) in sorted(cells, key=lambda c: c[0]):
        if mask[i, j]:
            continue
        size[:, i, j] = torch.tensor(log_size)
        offset[:, i, j] = torch.tensor([cx - j, cy - i])
        mask[i, j] = 1.0
        box[:, i, j] = torch.tensor(xyxy)
    return heat, size, offset, mask, box


def truth_boxes(samples: Sequence[T.Sample], scales: Sequence[float]) -> torch.Tensor:
    """Every sample's dog boxes in input pixels, (n, most dogs of a sample, 4), padded with empty boxes (IoU 0)."""
    most = max([len(s.boxes) for s in samples] + [1])
    out = torch.zeros(len(samples), most, 4)
    for k, (sample, scale) in enumerate(zip(samples, scales, strict=True)):
        for m, b in enumerate(sample.boxes):
            out[k, m] = torch.tensor([v * scale for v in b])
    return out


def box_iou_map(boxes: torch.Tensor, truth: torch.Tensor, generalized: bool = False) -> torch.Tensor:
    """IoU (or GIoU) of boxes (..., 4, h, w) with boxes broadcast against them (..., 4, h, w) -> (..., h, w)."""
    x0, y0, x1, y1 = boxes.unbind(-3)
    a0, b0, a1, b1 = truth.unbind(-3)
    inter = (torch.minimum(x1, a1) - torch.maximum(x0, a0)).clamp(min=0) * (
        torch.minimum(y1, b1) - torch.maximum(y0, b0)).clamp(min=0)
    union = (x1 - x0).clamp(min=0) * (y1 - y0).clamp(min=0) + (a1 - a0) * (b1 - b0) - inter
    iou = inter / union.clamp(min=1e-6)
    if not generalized:
        return iou
    hull = (torch.maximum(x1, a1) - torch.minimum(x0, a0)) * (torch.maximum(y1, b1) - torch.minimum(y0, b0))
    return iou - (hull - union) / hull.clamp(min=1e-6)


def quality_target(boxes: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """What the quality output learns: the IoU of the box decoded at each cell (b, 4, h, w) with the dog it
    overlaps most of its photo's dogs (b, m, 4; empty boxes pad) -> (b, h, w); 0 on a photo without a dog."""
    ious = box_iou_map(boxes[:, None], truth[:, :, :, None, None].expand(-1, -1, -1, *boxes.shape[-2:]))
    return ious.max(dim=1).values


def inside_any(truth: torch.Tensor, grid: int) -> torch.Tensor:
    """(b, grid, grid): 1 where a cell's centre lies inside one of its photo's dog boxes (b, m, 4, input px)."""
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) * D.STRIDE
    x, y = c[None, None, None, :], c[None, None, :, None]
    t = truth[..., None, None]
    return ((x >= t[:, :, 0]) & (x <= t[:, :, 2]) & (y >= t[:, :, 1]) & (y <= t[:, :, 3])).any(dim=1).float()


def extract(samples: Sequence[T.Sample], input_size: int, cache_dir: Path | None,
            batch: int = 32, log=print, flip: bool = False, backbone: str = D.DEFAULT_TRUNK
            ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Frozen-trunk features of every sample (cached by the trunk and the samples' sources and sizes); ``flip``: of
    the mirror image of each letterboxed sample, as the detector's flip test runs the trunk."""
    named = [] if backbone == D.DEFAULT_TRUNK else [backbone]  # the Lite0 caches keep their keys
    key = hashlib.sha256(json.dumps([input_size, [(s.source, s.image.size, s.boxes) for s in samples]]
                                    + (["flip"] if flip else []) + named).encode()).hexdigest()[:16]
    path = cache_dir / f"features-{key}.pt" if cache_dir else None
    scales = [input_size / max(s.image.size) for s in samples]
    if path and path.is_file():
        f16, f32 = torch.load(path, weights_only=True)
        log(f"features from {path}")
        return f16, f32, scales
    trunk = D.trunk_named(backbone)()
    f16s, f32s = [], []
    start = time.monotonic()
    for i in range(0, len(samples), batch):
        x = torch.stack([D.letterbox(s.image, input_size)[0] for s in samples[i:i + batch]])
        if flip:
            x = x.flip(-1)
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
             batch_size: int, lr: float, seed: int, truth: torch.Tensor | None = None, box_loss: str = "l1",
             quality: bool = False, channels: tuple[int, int] = D.Trunk.channels, log=print) -> D.CenterHead:
    """``box_loss``: "l1" on the log size at the centre cell, or "giou" on the box decoded there; ``quality``
    (needs ``truth``, ``truth_boxes``): the head's quality output learns ``quality_target`` by binary cross-entropy
    at every cell, cells inside a dog's box weighted 1 and the rest ``OUTSIDE_WEIGHT``."""
    torch.manual_seed(seed)
    heat_t, size_t, off_t, mask_t, box_t = target
    input_size = f16.shape[-1] * D.STRIDE
    head = D.CenterHead(width=width, quality=quality, channels=channels)
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
            heat, size, off, *q = head(a, b)
            m = mask_t[idx].unsqueeze(1)
            n_pos = m.sum().clamp(min=1.0)
            loss = focal_loss(heat, heat_t[idx]) + (F.l1_loss(off, off_t[idx], reduction="none") * m).sum() / n_pos
            boxes = D.box_map(size, off, input_size) if box_loss == "giou" or quality else None
            if box_loss == "giou":
                loss = loss + ((1 - box_iou_map(boxes, box_t[idx], generalized=True)) * m[:, 0]).sum() / n_pos
            else:
                loss = loss + (F.l1_loss(size, size_t[idx], reduction="none") * m).sum() / n_pos
            if quality:
                iou = quality_target(boxes.detach(), truth[idx])
                loss = loss + quality_loss(q[0][:, 0], iou, quality_weight(truth[idx], iou.shape[-1]))
            total += _step(opt, sched, loss) * len(idx)
        if epoch % 5 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1}/{epochs} loss {total / n:.4f}")
    return head.eval()


def quality_weight(truth: torch.Tensor, side: int) -> torch.Tensor:
    """The quality loss's weight of each cell: 1 inside a dog's box, ``OUTSIDE_WEIGHT`` elsewhere."""
    inside = inside_any(truth, side)
    return inside + OUTSIDE_WEIGHT * (1 - inside)


def quality_loss(logits: torch.Tensor, iou: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the quality output against the IoU of each cell's box, weighted by cell."""
    bce = F.binary_cross_entropy_with_logits(logits, iou, reduction="none")
    return (bce * weight).sum() / weight.sum()


def _step(opt: torch.optim.Optimizer, sched, loss: torch.Tensor) -> float:
    """One optimiser and schedule step on ``loss``; its value."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach())


def fit_quality(head: D.CenterHead, f16: torch.Tensor, f32: torch.Tensor, truth: torch.Tensor, *, epochs: int,
                batch_size: int, lr: float, seed: int, log=print) -> D.CenterHead:
    """A trained head with a quality output added and only that learnt (``fit_head``'s quality loss): its boxes
    stay the same, so the quality learns their IoU and the new score only re-ranks them. The head's features,
    its boxes and their IoU are computed once; the quality output is a 1x1 convolution on those features."""
    torch.manual_seed(seed)
    width = head.heat.in_channels
    out = D.CenterHead(width=width, quality=True)
    out.load_state_dict({k: v for k, v in head.state_dict().items() if not k.startswith("quality.")}, strict=False)
    out.eval()
    input_size = f16.shape[-1] * D.STRIDE
    xs, ious, weights = [], [], []
    with torch.no_grad():
        for i in range(0, f16.shape[0], 64):
            x = out.features(f16[i:i + 64].float(), f32[i:i + 64].float())
            iou = quality_target(D.box_map(out.size(x), out.offset(x), input_size), truth[i:i + 64])
            xs.append(x)
            ious.append(iou)
            weights.append(quality_weight(truth[i:i + 64], iou.shape[-1]))
    x, iou, weight = torch.cat(xs), torch.cat(ious), torch.cat(weights)
    opt = torch.optim.AdamW(out.quality.parameters(), lr=lr, weight_decay=1e-4)
    n = x.shape[0]
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * math.ceil(n / batch_size),
                                                pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size]
            loss = quality_loss(out.quality(x[idx])[:, 0], iou[idx], weight[idx])
            total += _step(opt, sched, loss) * len(idx)
        if epoch % 5 == 0 or epoch == epochs - 1:
            log(f"quality epoch {epoch + 1}/{epochs} loss {total / n:.4f}")
    return out.eval()


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


def candidates(detector: D.CenterNetDetector, samples: Sequence[T.Sample], *, cache_dir: Path | None = None,
               grid: Sequence[tuple[float, float]] = ((0.0, 0.5),), flip: bool = False,
               log=print) -> list[tuple[list, list]]:
    """For each (quality weight, p weight) of ``grid``: every photo's candidate boxes scored by the head alone
    (raw) and verified, [(box, score)] a photo, before any threshold; ``flip``: the detector's flip test (the
    head's maps of each photo and its mirror image merged, ``dogdet.flip_merge``)."""
    def head_outputs(mirrored: bool) -> torch.Tensor:
        f16, f32, _ = extract(samples, detector.input_size, cache_dir, log=log, flip=mirrored,
                              backbone=D.backbone_of(detector.config))
        with torch.inference_mode():
            return torch.cat(detector.head(f16.float(), f32.float()), dim=1)

    scales = [detector.input_size / max(s.image.size) for s in samples]
    outs = head_outputs(False)
    if flip:
        outs = torch.stack([D.flip_merge(o, m) for o, m in zip(outs, head_outputs(True), strict=True)])
    dog_p: dict = {}  # (photo, box) -> the verifier's dog probability: one crop is classified once

    def verify(k: int, boxes: list) -> list[float]:
        todo = [b for b in boxes if (k, b) not in dog_p]
        for b, c in zip(todo, detector.classify_crops(samples[k].image, todo), strict=True):
            dog_p[k, b] = c.dog
        return [dog_p[k, b] for b in boxes]

    out = []
    for quality_weight, p_weight in grid:
        detector.quality_weight = quality_weight
        found = [[f for f in detector.boxes(o, scale, s.image.size) if f[1] >= CANDIDATE_HEAT][:2 * detector.max_dogs]
                 for o, scale, s in zip(outs, scales, samples, strict=True)]
        verified = [[(box, D.score_of(head, p, p_weight)) for (box, head), p in
                     zip(f, verify(k, [box for box, _ in f]), strict=True)] for k, f in enumerate(found)]
        out.append((found, verified))
    return out


def choose_score(scored: Sequence[tuple[list, list]], truths: Sequence[list], detector: D.CenterNetDetector,
                 grid: Sequence[tuple[float, float]], photos: str, log=print) -> dict:
    """``candidates``' lists (of one set of photos, or pooled out-of-fold over several) -> the operating points of
    each ``grid`` pair and the pair that makes the fewest mistakes as the detector answers (parts dropped)."""
    from dogsearch.training.detector.rescore import mistakes

    def split(found: list) -> tuple[list, list]:
        return ([(f, t) for f, t in zip(found, truths, strict=True) if t],
                [f for f, t in zip(found, truths, strict=True) if not t])

    tried = []
    for (quality_weight, p_weight), (found, verified) in zip(grid, scored, strict=True):
        point = {"raw": operating_point(*split(found)), "verified": operating_point(*split(verified)),
                 "candidate": CANDIDATE_HEAT}
        answered = [D.suppress_parts([v for v in f if v[1] >= point["verified"]], detector.inside)[:detector.max_dogs]
                    for f in verified]
        bad = mistakes([{"truth": t} for t in truths], answered)
        tried.append({"quality": quality_weight, "p": p_weight, "operating_point": point, "mistakes": bad,
                      **rates(answered, truths)})
        log(f"score quality^{quality_weight} p^{p_weight}: operating points {point}, {bad} mistakes")
    best = min(tried, key=lambda t: t["mistakes"])
    log(f"chosen {best} from {photos}")
    return best


def rates(answered: Sequence[list], truths: Sequence[list]) -> dict:
    """Precision and recall at IoU 0.5 of the answered boxes of the dog photos (``eval detect``'s matching), and the
    share of photos without a dog given a box."""
    from dogsearch.eval.detect import match
    from dogsearch.models.detect import Detection

    hits = boxes = dogs = boxed = negatives = 0
    for found, truth in zip(answered, truths, strict=True):
        if not truth:
            negatives += 1
            boxed += bool(found)
            continue
        hits += sum(hit for _, hit in match([Detection(b, s) for b, s in found], truth))
        boxes, dogs = boxes + len(found), dogs + len(truth)
    return {"precision": round(hits / max(boxes, 1), 4), "recall": round(hits / max(dogs, 1), 4),
            "fp_rate": round(boxed / max(negatives, 1), 4)}


def fold_of(sample: T.Sample, folds: int) -> int:
    """A training-split photo's fold for cross-fitting: its bucket (0-69) cut into ``folds`` runs."""
    from dogsearch.eval.detect import HELD_OUT_FROM, bucket

    return bucket(sample.source) * folds // HELD_OUT_FROM


def train(dog_dir: Path, image_dirs: Sequence[Path], negative_dirs: Sequence[Path], out: Path, *,
          input_size: int = 256, width: int = 64, epochs: int = 20, batch_size: int = 32, lr: float = 2e-3,
          seed: int | Sequence[int] = 0, threads: int = 2, cache_dir: Path | None = None,
          suppress_inside: float | None = SUPPRESS_INSIDE, quality: bool = False, box_loss: str = "l1",
          spread: int = 0, quality_of: Path | None = None, pseudo_dirs: Sequence[Path] = (), pseudo_photos: int = 0,
          teacher: Path | None = None, pseudo_high: float = 0.75, pseudo_low: float = 0.3, folds: int = 0,
          flip: str = "off", dump_out_of_fold: Path | None = None, backbone: str = D.DEFAULT_TRUNK,
          log=print) -> dict:
    """``quality``: the head learns the IoU of its boxes too (``fit_head``) and the calibration photos choose the
    score's exponents from ``SCORE_GRID``; ``box_loss``: "l1" (log size) or "giou" (the decoded box); ``spread``:
    the box regressed at the cells this near its centre cell too (``targets``); ``quality_of``: a trained delta
    whose head is kept as it is, with a quality output added and learnt (``fit_quality``; implies ``quality``);
    several seeds (``seed`` a sequence): one head each (its own draw of the compositions, its own initialisation),
    merged into one whose outputs are their mean (``dogdet.merge_heads``) before the calibration; ``pseudo_photos``:
    up to this many "fit" photos of ``pseudo_dirs`` (dogs without boxes) boxed by the ``teacher`` delta and added
    to the labelled dogs where it is sure of every box (``pseudo.pseudo_samples``, ``pseudo_high`` / ``pseudo_low``);
    ``folds``: the calibration photos fit the head too, and the operating points (and score) are chosen on
    out-of-fold scores of all training-split photos (``fold_of``: each fold scored by heads fitted on the others),
    a choice made on 4-5x the photos; ``flip``: "off", "on" (the flip test, ``dogdet.flip_merge``) or "choose" (the
    one with fewer mistakes where the points are chosen; a tie keeps it off); ``dump_out_of_fold``: with ``folds``,
    each photo's candidates as its fold's heads see them, written there in ``rescore.dump``'s records (with
    ``fold``), so that the re-scoring can be weighed out of fold too (``rescore.cross_validate``); ``backbone``: the
    frozen trunk (``dogdet.TRUNKS``)."""
    seeds = [seed] if isinstance(seed, int) else list(seed)
    if not seeds or (quality_of is not None and len(seeds) > 1):
        raise ValueError("train: one seed or more, and only one with quality_of")
    if folds and (folds < 2 or quality_of is not None or pseudo_photos):
        raise ValueError("train: folds is 2 or more, and neither with quality_of (a head fitted on the fit part) nor "
                         "with pseudo labels (their photos have no labelled boxes to be scored against)")
    if dump_out_of_fold is not None and not folds:
        raise ValueError("train: dump_out_of_fold needs folds")
    if flip not in ("off", "on", "choose"):
        raise ValueError(f"train: flip is off, on or choose, not {flip!r}")
    channels = D.trunk_named(backbone).channels
    torch.set_num_threads(threads)
    started = time.monotonic()
    dogs = T.labelled_samples(dog_dir, image_dirs, "fit")
    negatives = T.negative_samples(negative_dirs, "fit")
    labelled = len(dogs)
    pseudo_counts = None
    if pseudo_photos:
        from dogsearch.training.detector import pseudo

        if teacher is None or not pseudo_dirs:
            raise ValueError("train: pseudo_photos needs a teacher delta and pseudo_dirs")
        # every labelled photo, fit or not, is left out of the draw: its part is decided by its labels
        named = {path.name for path, _ in find_labelled(dog_dir, image_dirs)}
        tutor = D.CenterNetDetector(teacher, verify=True, threads=threads)
        extra, pseudo_counts = pseudo.pseudo_samples(
            tutor, pseudo.draw(pseudo_dirs, named, pseudo_photos), high=pseudo_high, low=pseudo_low,
            cache_dir=cache_dir, log=log)
        pseudo_counts = {"teacher": tutor.name, "dirs": [d.name for d in pseudo_dirs], "high": pseudo_high,
                         "low": pseudo_low, **pseudo_counts}
        dogs = dogs + extra
    quality = quality or quality_of is not None
    config = {"name": out.name, "input_size": input_size, "width": width * len(seeds), "stride": D.STRIDE,
              "operating_point": {"raw": 0.5, "verified": 0.5, "candidate": CANDIDATE_HEAT},
              "suppress_inside": suppress_inside}
    if backbone != D.DEFAULT_TRUNK:
        config["backbone"] = backbone
    if len(seeds) > 1:
        config["groups"] = len(seeds)
    if quality:
        config["quality"] = True
    grid = SCORE_GRID if quality else ((0.0, 0.5),)

    def fit(fit_dogs: Sequence[T.Sample], fit_negatives: Sequence[T.Sample]) -> tuple[D.CenterHead, list]:
        heads, counts = [], []
        for s in seeds:
            random.seed(s)
            samples = T.training_set(fit_dogs, fit_negatives, seed=s)
            counts.append((len(samples), sum(len(x.boxes) for x in samples)))
            log(f"seed {s}: {len(fit_dogs)} dog photos, {len(fit_negatives)} without a dog -> {len(samples)} "
                "training samples")
            f16, f32, scales = extract(samples, input_size, cache_dir, log=log, backbone=backbone)
            if quality_of is not None:
                heads.append(fit_quality(_base_head(quality_of, input_size, width, backbone), f16, f32,
                                         truth_boxes(samples, scales), epochs=epochs, batch_size=batch_size, lr=lr,
                                         seed=s, log=log))
                continue
            per = [targets(x.boxes, sc, input_size, spread) for x, sc in zip(samples, scales, strict=True)]
            target = [torch.stack([p[k] for p in per]) for k in range(5)]
            heads.append(fit_head(f16, f32, target, width=width, epochs=epochs, batch_size=batch_size, lr=lr,
                                  seed=s, truth=truth_boxes(samples, scales), box_loss=box_loss, quality=quality,
                                  channels=channels, log=log))
        return (heads[0] if len(heads) == 1 else D.merge_heads(heads)), counts

    calibrate_dogs = T.labelled_samples(dog_dir, image_dirs, "calibrate")
    calibrate_negatives = T.negative_samples(negative_dirs, "calibrate")
    flips = {"off": (False,), "on": (True,), "choose": (False, True)}[flip]
    if not folds:
        head, counts = fit(dogs, negatives)
        detector = D.CenterNetDetector(head=head, config=config, verify=True)
        samples = [*calibrate_dogs, *calibrate_negatives]
        scored = {f: candidates(detector, samples, cache_dir=cache_dir, grid=grid, flip=f, log=log) for f in flips}
        truths = [x.boxes for x in samples]
        photos = f"{len(calibrate_dogs)} calibration dog photos, {len(calibrate_negatives)} without a dog"
        split = f"eval.detect.split_of; fit = bucket < {T.FIT_BELOW}, calibrate {T.FIT_BELOW}-69"
    else:
        # every training-split photo fits the head and chooses its points: each fold is scored by heads fitted
        # on the others, the points are chosen on all folds' scores pooled, then the head is fitted on them all
        labelled += len(calibrate_dogs)
        dogs, negatives = dogs + calibrate_dogs, negatives + calibrate_negatives
        scored = {f: [([], []) for _ in grid] for f in flips}
        truths, fold_detectors = [], []
        for k in range(folds):
            inside = [x for x in (*dogs, *negatives) if fold_of(x, folds) == k]
            log(f"fold {k + 1}/{folds}: {len(inside)} photos scored by heads fitted on the other folds")
            fold_head, _ = fit([x for x in dogs if fold_of(x, folds) != k],
                               [x for x in negatives if fold_of(x, folds) != k])
            detector = D.CenterNetDetector(head=fold_head, config=config, verify=True)
            for f in flips:
                for (found, verified), (more_found, more_verified) in zip(
                        scored[f], candidates(detector, inside, cache_dir=cache_dir, grid=grid, flip=f, log=log),
                        strict=True):
                    found += more_found
                    verified += more_verified
            truths += [x.boxes for x in inside]
            fold_detectors.append((detector, inside))
        photos = (f"{folds} folds' out-of-fold scores of {sum(bool(t) for t in truths)} dog photos, "
                  f"{sum(not t for t in truths)} without a dog")
        head, counts = fit(dogs, negatives)
        split = f"eval.detect.split_of; fit on buckets 0-69, operating points from {folds}-fold cross-fitting there"
    tried = {f: choose_score(scored[f], truths, detector, grid, photos + (" (flip test)" if f else ""), log=log)
             for f in flips}
    chosen_flip = min(flips, key=lambda f: tried[f]["mistakes"])  # a tie keeps the single pass: half the trunk
    chosen = tried[chosen_flip]
    if chosen_flip:
        config["flip"] = True
    if dump_out_of_fold is not None:
        _dump_out_of_fold(dump_out_of_fold, fold_detectors, chosen["quality"], chosen_flip, log)
    config["operating_point"] = chosen["operating_point"]
    if quality:
        config["score"] = {"quality": chosen["quality"], "p": chosen["p"]}
    minutes = round((time.monotonic() - started) / 60, 1)
    loss = {"l1": "CenterNet focal + L1 log size + L1 offset",
            "giou": "CenterNet focal + GIoU of the decoded box + L1 offset"}[box_loss] + (
        " + BCE quality (IoU of the decoded box; outside the dogs' boxes x 0.1)" if quality else "")
    if quality_of is not None:
        base_sha = D.load_weights(quality_of)[0]["files"]["head.safetensors"]
        loss = (f"the head of {quality_of.name} (sha256 {base_sha[:12]}) kept; only "
                "a quality output learnt: BCE to the IoU of its decoded box, outside the dogs' boxes x 0.1")
    config.update({
        "trunk": D.TRUNK_NOTES[backbone],
        "recipe": {"epochs": epochs, "batch_size": batch_size, "lr": lr,
                   **({"seed": seeds[0]} if len(seeds) == 1 else {"seeds": seeds, "heads": "outputs averaged"}),
                   "optimizer": "AdamW wd 1e-4, one-cycle", "loss": loss,
                   "feature_dropout": 0.1, "split": split},
        "data": {"fit_dog_photos": labelled, "fit_negative_photos": len(negatives),
                 **({"pseudo_labelled": pseudo_counts} if pseudo_counts else {}),
                 "training_samples": counts[0][0] if len(seeds) == 1 else [n for n, _ in counts],
                 "training_dogs": counts[0][1] if len(seeds) == 1 else [d for _, d in counts]},
        "calibration_mistakes": chosen["mistakes"],
        "calibration_rates": {k: chosen[k] for k in ("precision", "recall", "fp_rate")},
        **({"folds": folds} if folds else {}),
        **({"flip_test_mistakes": {"off": tried[False]["mistakes"], "on": tried[True]["mistakes"]}}
           if len(flips) > 1 else {}),
        **({"box_spread": spread} if spread else {}),
        "train_minutes": minutes,
    })
    write(out, head, config)
    return config


def _dump_out_of_fold(path: Path, fold_detectors: Sequence[tuple[D.CenterNetDetector, list]], quality_weight: float,
                      flip: bool, log) -> None:
    """Each fold's photos' candidates as its heads see them, scored as chosen (``rescore.dump``'s records, with
    their ``fold``)."""
    from dogsearch.training.detector import rescore

    records = []
    for k, (detector, photos) in enumerate(fold_detectors):
        detector.quality_weight, detector.flip = quality_weight, flip
        records += [{**r, "fold": k} for r in rescore.dump(detector, photos, log=log)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))


def _base_head(weights: Path, input_size: int, width: int, backbone: str = D.DEFAULT_TRUNK) -> D.CenterHead:
    """A trained delta's single head, its quality output to be learnt anew (``fit_quality``)."""
    base_config, state = D.load_weights(weights)
    if (int(base_config["input_size"]), int(base_config["width"]), D.backbone_of(base_config)) != \
            (input_size, width, backbone) or base_config.get("groups", 1) != 1:
        raise ValueError(f"{weights} has input size {base_config['input_size']}, width {base_config['width']} and "
                         f"trunk {D.backbone_of(base_config)} ({base_config.get('groups', 1)} heads): train with "
                         "those, on a single head")
    base = D.head_of(base_config)
    base.load_state_dict(state)
    return base


def write(out: Path, head: D.CenterHead, config: dict) -> None:
    from safetensors.torch import save_file

    from dogsearch.models.weights import sha256_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "head.safetensors"))
    config["files"] = {"head.safetensors": sha256_file(out / "head.safetensors")}
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")

