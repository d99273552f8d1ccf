"""A second-stage box refiner, weighed out of fold (docs/detection.md, "Every training photo, the choices
cross-fitted"; tried 2026-12-05, not kept): the frozen trunk's features of a crop around each answered box (``--margin``
of its size each side, letterboxed to ``--size``) and the box give a correction of the box, fitted on the labelled
dogs' candidates in a dump of `dogsearch train detector --folds K --dump-out-of-fold FILE` (IoU >= 0.3 with a label;
``--jitter`` more boxes drawn around each label), each fold's refiner on the other folds' photos. Each fold's boxes as
answered at its operating point (chosen on the other folds), refined, NMS at IoU 0.5 and ``suppress_inside``, against
the same boxes unrefined. Crop features are cached in /tmp.

    python scripts/detector-refine.py /tmp/det/oof-noflip.json --jitter 0 --epochs 5
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dogsearch.core.boxes import iou  # noqa: E402
from dogsearch.models import dogdet as D  # noqa: E402
from dogsearch.training.detector import data as T  # noqa: E402
from dogsearch.training.detector import rescore as RS  # noqa: E402
from dogsearch.training.detector.train import rates  # noqa: E402

DATA = Path("../shared/data")


def window(box, w, h, margin):
    bw, bh = box[2] - box[0], box[3] - box[1]
    return (max(0.0, box[0] - margin * bw), max(0.0, box[1] - margin * bh),
            min(float(w), box[2] + margin * bw), min(float(h), box[3] + margin * bh))


def norm(box, win):
    s = max(win[2] - win[0], win[3] - win[1])
    return [(box[0] - win[0]) / s, (box[1] - win[1]) / s, (box[2] - win[0]) / s, (box[3] - win[1]) / s]


def denorm(v, win):
    s = max(win[2] - win[0], win[3] - win[1])
    return (win[0] + v[0] * s, win[1] + v[1] * s, win[0] + v[2] * s, win[1] + v[3] * s)


def jitter(truth, rng, w, h):
    tw, th = truth[2] - truth[0], truth[3] - truth[1]
    for _ in range(50):
        sw, sh = np.exp(rng.uniform(-0.7, 0.4)), np.exp(rng.uniform(-0.7, 0.4))
        cx = (truth[0] + truth[2]) / 2 + rng.uniform(-0.3, 0.3) * tw
        cy = (truth[1] + truth[3]) / 2 + rng.uniform(-0.3, 0.3) * th
        b = (max(0, cx - sw * tw / 2), max(0, cy - sh * th / 2), min(w, cx + sw * tw / 2), min(h, cy + sh * th / 2))
        if b[2] - b[0] > 4 and b[3] - b[1] > 4 and iou(b, truth) >= 0.3:
            return b
    return None


class Refiner(nn.Module):
    def __init__(self, c16=112, c32=1280, width=64, grid=7):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(c32, width, 1), nn.BatchNorm2d(width), nn.ReLU())
        self.reduce16 = nn.Sequential(nn.Conv2d(c16, width // 2, 3, stride=2, padding=1), nn.BatchNorm2d(width // 2),
                                      nn.ReLU())
        self.flat = nn.Sequential(nn.Flatten(), nn.Dropout(0.2))
        self.mlp = nn.Sequential(nn.Linear((width + width // 2) * grid * grid + 4, 256), nn.ReLU(), nn.Linear(256, 4))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, f16, f32, box):
        x = torch.cat([self.reduce(f32), self.reduce16(f16)], 1)
        return box + self.mlp(torch.cat([self.flat(x), box], 1))


def features(items, size, batch=32):
    trunk = D.Trunk()
    f16s, f32s = [], []
    for i in range(0, len(items), batch):
        x = torch.stack([D.letterbox(img.crop(tuple(int(round(v)) for v in win)), size)[0]
                         for img, win in items[i:i + batch]])
        with torch.inference_mode():
            a, b = trunk(x)
        f16s.append(a.half())
        f32s.append(b.half())
    return torch.cat(f16s), torch.cat(f32s)


def train(f16, f32, boxes, targets, epochs, seed):
    torch.manual_seed(seed)
    model = Refiner()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    n = len(boxes)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=max(1, epochs * ((n + 63) // 64)))
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n)
        for i in range(0, n, 64):
            idx = perm[i:i + 64]
            pred = model(f16[idx].float(), f32[idx].float(), boxes[idx])
            loss = nn.functional.smooth_l1_loss(pred, targets[idx], beta=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def mean_iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.mean([iou(tuple(x), tuple(y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump", type=Path)
    ap.add_argument("--margin", type=float, default=0.5)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--jitter", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--candidates", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    records = json.loads(args.dump.read_text())
    images = {s.source: s.image for part in ("fit", "calibrate")
              for s in T.labelled_samples(DATA / "dogpose", [DATA / "imagewoof"], part)}
    params = {"candidates": args.candidates, "verified": 0.25}
    folds = sorted({r["fold"] for r in records})
    points = {k: RS.operating_point([r for r in records if r["fold"] != k], params, 0.6) for k in folds}
    answered = {}
    for i, r in enumerate(records):
        answered[i] = RS.answers([r], params, 0.6, points[r["fold"]])[0]
    rng = np.random.default_rng(0)
    items, meta = [], []  # meta: (record index, kind, box, target or None)
    for i, r in enumerate(records):
        if not r["truth"]:
            continue
        img = images[r["source"]]
        w, h = img.size
        train_boxes = [tuple(c["box"]) for c in r["candidates"]]
        train_boxes += [b for t in r["truth"] for b in (jitter(t, rng, w, h) for _ in range(args.jitter)) if b]
        for b in train_boxes:
            t = max(r["truth"], key=lambda t: iou(b, t))
            if iou(b, t) < 0.3:
                continue
            win = window(b, w, h, args.margin)
            items.append((img, win))
            meta.append((i, "train", b, norm(t, win), win))
        for b, s in answered[i]:
            win = window(b, w, h, args.margin)
            items.append((img, win))
            meta.append((i, "eval", b, s, win))
    started = time.monotonic()
    cache = Path(f"/tmp/refine-{args.dump.stem}-{args.margin}-{args.size}-{args.jitter}-{args.candidates}.pt")
    if cache.is_file():
        f16, f32 = torch.load(cache)
    else:
        f16, f32 = features(items, args.size)
        torch.save((f16, f32), cache)
    print(f"{len(items)} crops' features in {time.monotonic() - started:.0f} s", file=sys.stderr)
    boxes = torch.tensor([norm(m[2], m[4]) for m in meta], dtype=torch.float32)
    refined = {i: list(a) for i, a in answered.items()}
    for k in folds:
        tr = [j for j, m in enumerate(meta) if m[1] == "train" and records[m[0]]["fold"] != k]
        ev = [j for j, m in enumerate(meta) if m[1] == "eval" and records[m[0]]["fold"] == k]
        targets = torch.tensor([meta[j][3] for j in tr], dtype=torch.float32)
        model = train(f16[tr], f32[tr], boxes[tr], targets, args.epochs, seed=k)
        with torch.inference_mode():
            pred = model(f16[ev].float(), f32[ev].float(), boxes[ev]).numpy()
            fit = model(f16[tr].float(), f32[tr].float(), boxes[tr])
        print(f"fold {k}: fitted boxes' mean IoU {mean_iou(boxes[tr], targets):.3f} -> {mean_iou(fit, targets):.3f}",
              file=sys.stderr)
        for i in {meta[j][0] for j in ev}:
            refined[i] = []
        for j, p in zip(ev, pred, strict=True):
            i, _, b, s, win = meta[j]
            refined[i].append((denorm(p, win), s))
    before = [answered[i] for i in range(len(records))]
    after = [D.suppress_parts(D.nms(refined[i]), 0.6) for i in range(len(records))]
    truths = [[tuple(t) for t in r["truth"]] for r in records]
    report = {}
    for name, found in (("as_answered", before), ("refined", after)):
        best = [max(iou(b, t) for b, _ in found[i]) for i, r in enumerate(records) for t in r["truth"] if found[i]]
        report[name] = {"mistakes": int(RS.mistakes(records, found)), **rates(found, truths),
                        "iou_of_labelled_dogs_p10_p25_p50_p75": np.percentile(best, [10, 25, 50, 75]).round(3).tolist()}
    print(json.dumps({"settings": vars(args) | {"dump": str(args.dump)}, **report}, indent=1, default=float))


if __name__ == "__main__":
    main()
