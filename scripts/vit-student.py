"""Distil the default ViT into itself at a smaller input (issue 20: a student with fewer tokens, for CPUs).

The cost of a ViT forward follows its tokens: 257 at 224 px, 145 at 168, 101 at 140. Run untrained at a smaller
input (``"kind": "input-size"``) the default's vectors drift from its own (196 px lost 0.009 of Oxford's R@1,
docs/embedder-eval.md). Here the same network at ``--size`` learns to give the vectors the default gives at 224 px:
a LoRA on every block, the LayerNorms and the resampled position embedding, trained to match the teacher's vector
of the same view (cosine) and whom the teacher puts near whom in a batch (relational distillation). Only the
teacher's vectors are targets: the aim is the default's own geometry at fewer tokens, so that quality stays.

    python scripts/vit-student.py cache --data ../shared/data --cache /tmp/vst
    python scripts/vit-student.py train --cache /tmp/vst --size 168 --out /tmp/vst/s168
    python scripts/vit-student.py save --run /tmp/vst/s168 --model-id vit_small_dinov2-lora-dogs-v3-s168

The cache keeps each view as the teacher sees it (224-px uint8) with the teacher's served vector (OpenVINO bf16 on a
CPU that has it); the student sees the same view resized to its size. Training sets and the validation rule are
``vit-top-blocks.py``'s: the epoch kept is the best mean validation mAP among those that cost no validation set more
than ``--max-drop`` against the teacher (while none is, the best, marked ``"within": false``); the held-out sets are
scored once, for the kept epoch. ``save`` writes two folders: the input size on the default (no weights) and the LoRA
delta on it, which ``create_model`` then serves. ``train --device cuda`` runs the same recipe on a GPU.
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from dogsearch.training.embedder.augment import DOMAIN_AUGMENT as AUGMENT
from dogsearch.training.fusion.train import VAL_SETS as VAL

TEACHER = "vit_small_dinov2-lora-dogs-v3"
TRAIN = {"iw_train": ("breed", 2), "dfn_train": ("face", 2), "body_train": ("body", 4)}
HELD_OUT = ("iw_dev", "dfn_heldout", "oxford_heldout", "body_heldout")


def _command() -> str:
    return "python scripts/vit-student.py " + shlex.join(sys.argv[1:])


def _normalisation():
    import timm.data

    from dogsearch.models.embedding import split_eval_transform
    from dogsearch.models.registry import build_backbone

    _, _, config = build_backbone(TEACHER)
    return split_eval_transform(timm.data.create_transform(**config, is_training=False))


# -- cache ------------------------------------------------------------------------------------------------------------

def cache(args: argparse.Namespace) -> int:
    from dogsearch.models.dinov2 import IMG_SIZE
    from dogsearch.models.embedding import pixels
    from dogsearch.models.registry import create_model
    from dogsearch.training.embedder.augment import image_augment
    from dogsearch.training.fusion.train import set_items

    torch.set_num_threads(args.threads)
    resize, mean, std = _normalisation()
    teacher = create_model(TEACHER, runtime=args.runtime, precision=args.precision, threads=args.threads)
    out = args.cache
    out.mkdir(parents=True, exist_ok=True)
    meta = {"teacher": TEACHER, "teacher_model_id": teacher.model_id, "runtime": args.runtime,
            "precision": args.precision, "sets": {}, "command": _command()}
    plan = [(name, *TRAIN[name]) for name in TRAIN] + [(name, None, 1) for name in (*VAL, *HELD_OUT)]
    torch.manual_seed(0)
    for name, domain, views in plan:
        items = set_items(name, args.data, breed_per_label=args.breed_per_label)
        rows = [(path, label, v) for path, label in items for v in range(views)]
        images = np.lib.format.open_memmap(out / f"{name}.pixels.npy", mode="w+", dtype=np.uint8,
                                           shape=(len(rows), 3, IMG_SIZE, IMG_SIZE))
        vectors = np.zeros((len(rows), 384), np.float32)
        augment = image_augment(IMG_SIZE, mean.flatten().tolist(), std.flatten().tolist(),
                                **AUGMENT[domain]) if domain else None
        for i in tqdm(range(0, len(rows), args.batch), desc=name, unit="batch"):
            batch = []
            for path, _, v in rows[i:i + args.batch]:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if v == 0:  # view 0 is the photo as the service sees it
                        batch.append(pixels(resize(im)))
                    else:  # back to uint8: the student resizes what the teacher saw
                        batch.append(((augment(im) * std + mean) * 255).round().clamp(0, 255).to(torch.uint8))
            x = torch.stack(batch)
            images[i:i + len(x)] = x.numpy()
            vectors[i:i + len(x)] = teacher.embed((x.float() / 255 - mean) / std)
        images.flush()
        np.save(out / f"{name}.teacher.npy", vectors)
        meta["sets"][name] = {"domain": domain, "views": views, "paths": [str(p) for p, _, _ in rows],
                              "labels": [lab for _, lab, _ in rows], "view": [v for _, _, v in rows]}
        (out / "meta.json").write_text(json.dumps(meta))
    return 0


# -- train ------------------------------------------------------------------------------------------------------------

class Cached:
    def __init__(self, folder: Path, name: str, meta: dict) -> None:
        info = meta["sets"][name]
        self.pixels = np.load(folder / f"{name}.pixels.npy", mmap_mode="r")
        self.teacher = torch.from_numpy(np.load(folder / f"{name}.teacher.npy"))
        self.label_names, self.view = info["labels"], np.array(info["view"])

    def served(self) -> np.ndarray:
        return np.flatnonzero(self.view == 0)


class Student:
    """The teacher's network at ``size`` px: what it sees is the teacher's 224-px view resized (antialiased)."""

    def __init__(self, size: int, mean: torch.Tensor, std: torch.Tensor, device: str = "cpu") -> None:
        from dogsearch.models.dinov2 import with_input_size
        from dogsearch.models.registry import build_backbone

        vit = build_backbone(TEACHER).module
        self.vit, self.size, self.device = with_input_size(vit, size).to(device), size, torch.device(device)
        self.mean, self.std = mean.to(device), std.to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x.to(self.device).float() / 255, size=(self.size, self.size), mode="bilinear",
                          antialias=True, align_corners=False)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return F.normalize(self.vit((x - self.mean) / self.std).float(), dim=1)


@torch.no_grad()
def _embed(student: Student, data: Cached, rows: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([student(torch.from_numpy(np.asarray(data.pixels[rows[i:i + batch]]))).cpu().numpy()
                           for i in range(0, len(rows), batch)])


def _metrics(vectors: dict[str, np.ndarray], sets: dict[str, Cached], names) -> dict:
    from dogsearch.eval.retrieval import retrieval_metrics

    out = {}
    for name in names:
        labels = [sets[name].label_names[r] for r in sets[name].served()]
        out[name] = {k: round(v, 4) for k, v in retrieval_metrics(vectors[name], labels).items()}
    if "oxford_val" in names and "oxford_heldout" in names:  # Oxford's 13 breeds: its val and held-out together
        labels = [sets[n].label_names[r] for n in ("oxford_val", "oxford_heldout") for r in sets[n].served()]
        both = np.concatenate([vectors["oxford_val"], vectors["oxford_heldout"]])
        out["oxford"] = {k: round(v, 4) for k, v in retrieval_metrics(both, labels).items()}
    return out


def _scores(student: Student | None, sets: dict[str, Cached], names) -> dict:
    """Retrieval on each set's served views: the student's vectors, or (None) the teacher's cached ones."""
    vectors = {n: (sets[n].teacher[sets[n].served()].numpy() if student is None
                   else _embed(student, sets[n], sets[n].served())) for n in names}
    out = _metrics(vectors, sets, names)
    if student is not None:
        for n in names:
            out[n]["cosine"] = round(float((vectors[n] * sets[n].teacher[sets[n].served()].numpy()).sum(1).mean()), 5)
    return out


def train(args: argparse.Namespace) -> int:
    from dogsearch.models import lora as L
    from dogsearch.training.embedder.losses import relational_distill

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    meta = json.loads((args.cache / "meta.json").read_text())
    sets = {name: Cached(args.cache, name, meta) for name in (*TRAIN, *VAL, *HELD_OUT)}
    _, mean, std = _normalisation()
    student = Student(args.size, mean, std, args.device)
    vit = student.vit
    L.add_lora(vit, args.rank, args.alpha, L.VIT_TARGETS)
    full = [n for n, _ in vit.named_parameters() if n == "pos_embed" or ".norm" in n or n.startswith("norm.")]
    for name, param in vit.named_parameters():
        param.requires_grad = "lora_" in name or name in full
    opt = torch.optim.AdamW([
        {"params": [p for n, p in vit.named_parameters() if "lora_" in n], "weight_decay": args.weight_decay},
        # whole tensors (the norms, the resampled positions) move less: they start where the teacher's work
        {"params": [p for n, p in vit.named_parameters() if n in full], "weight_decay": 0.0, "lr": args.lr / 3},
    ], lr=args.lr)
    total = args.epochs * args.steps
    warm = max(1, args.steps // 4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.jsonl", "w")

    def record(row: dict) -> None:
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()

    teacher_val = _scores(None, sets, VAL)
    floor = {n: teacher_val[n]["map"] - args.max_drop for n in VAL}
    vit.eval()
    start = _scores(student, sets, VAL)
    record({"epoch": 0, "teacher_val": teacher_val, "val": start,
            "val_score": round(float(np.mean([start[n]["map"] for n in VAL])), 4)})
    # every training view, drawn in proportion to a set's share (all of them: the teacher's geometry everywhere)
    pool = [(name, i) for name in TRAIN for i in range(len(sets[name].teacher))]
    best, best_epoch, best_delta, kept_within = -1.0, 0, None, False
    for epoch in range(1, args.epochs + 1):
        vit.train()
        t0, losses = time.monotonic(), []
        for _ in tqdm(range(args.steps), desc=f"epoch {epoch}", unit="step", file=sys.stderr):
            picks = torch.randperm(len(pool), generator=gen)[:args.batch].tolist()
            by_set: dict[str, list[int]] = {}
            for p in picks:
                by_set.setdefault(pool[p][0], []).append(pool[p][1])
            x = torch.cat([torch.from_numpy(np.asarray(sets[n].pixels[sorted(r)])) for n, r in by_set.items()])
            t = torch.cat([sets[n].teacher[sorted(r)] for n, r in by_set.items()]).to(student.device)
            s = student(x)
            parts = {"cosine": args.w_cosine * (1 - (s * t).sum(1)).mean(),
                     "relational": args.w_relational * relational_distill(s, t, args.distill_temperature)}
            loss = sum(parts.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append({k: v.item() for k, v in parts.items()})
        vit.eval()
        val = _scores(student, sets, VAL)
        score = round(float(np.mean([val[n]["map"] for n in VAL])), 4)
        within = all(val[n]["map"] >= floor[n] for n in VAL)
        record({"epoch": epoch, "minutes": round((time.monotonic() - t0) / 60, 2),
                "loss": {k: round(float(np.mean([s[k] for s in losses])), 5) for k in losses[0]},
                "val": val, "val_score": score, "within": within})
        # kept: the best within the rule; while none is, the best so far (reported as not within)
        if best_delta is None or (within, score) > (kept_within, best):
            best, best_epoch, kept_within = score, epoch, within
            best_delta = {k: v.cpu().clone() for k, v in L.delta_state(vit, full).items()}
    summary = {"best_epoch": best_epoch, "val_score": best, "within": kept_within, "teacher_val": teacher_val,
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    torch.save(best_delta, args.out / "delta.pt")
    params = dict(vit.named_parameters())
    with torch.no_grad():
        for key, value in best_delta.items():
            params[key].copy_(value)
    vit.eval()
    summary["teacher_held_out"] = _scores(None, sets, HELD_OUT)
    summary["held_out"] = _scores(student, sets, HELD_OUT)
    summary["command"] = _command()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record(summary)
    return 0


def save(args: argparse.Namespace) -> int:
    """The kept epoch as two model folders: the input size on the teacher (no weights), and the delta on that."""
    from dogsearch.models import lora as L
    from dogsearch.models.trained import delta_sha256

    summary = json.loads((args.run / "summary.json").read_text())
    train_args = summary["args"]
    meta = json.loads((Path(train_args["cache"]) / "meta.json").read_text())
    size = int(train_args["size"])
    base_id = f"{TEACHER}-{size}px"
    base = args.models_dir / base_id
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.json").write_text(json.dumps({
        "model_id": base_id, "kind": "input-size", "base": TEACHER, "base_model_id": TEACHER,
        "base_sha256": delta_sha256(TEACHER), "input-size": {"size": size}}, indent=2) + "\n")
    folder = args.models_dir / args.model_id
    sha = L.save_delta(torch.load(args.run / "delta.pt"), folder)
    config = {
        "model_id": args.model_id, "kind": "lora", "base": base_id, "base_model_id": base_id,
        "lora": {"rank": int(train_args["rank"]), "alpha": float(train_args["alpha"]), "targets": list(L.VIT_TARGETS)},
        "recipe": train_args, "best_epoch": summary["best_epoch"], "validation": summary["val_score"],
        "cache_command": meta.get("command"), "command": summary["command"], "sha256": sha,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "history.jsonl").write_text((args.run / "log.jsonl").read_text())
    print(json.dumps({"model": str(folder), "sha256": sha}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("--data", type=Path, default=Path("../shared/data"))
    c.add_argument("--cache", type=Path, required=True)
    c.add_argument("--breed-per-label", type=int, default=300, help="Imagewoof train photos a breed (0: all)")
    c.add_argument("--runtime", default="openvino", help="the teacher's runtime, as served")
    c.add_argument("--precision", default="bf16")
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--size", type=int, default=168, help="the student's input, px (a multiple of 14)")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--steps", type=int, default=100, help="steps an epoch")
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--rank", type=int, default=16)
    t.add_argument("--alpha", type=float, default=16.0)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--w-cosine", type=float, default=1.0)
    t.add_argument("--w-relational", type=float, default=1.0)
    t.add_argument("--distill-temperature", type=float, default=0.05)
    t.add_argument("--max-drop", type=float, default=0.005)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--device", default="cpu", help="cpu, or cuda: the same recipe, longer, on a GPU")
    s = sub.add_parser("save")
    s.add_argument("--run", type=Path, required=True, help="a train --out folder")
    s.add_argument("--model-id", required=True)
    s.add_argument("--models-dir", type=Path, default=Path("models"))
    args = p.parse_args()
    return {"cache": cache, "train": train, "save": save}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
