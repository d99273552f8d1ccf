"""Fine-tune the default ViT's last blocks on a CPU, on tokens cached once (issues 18 and 19).

Training the whole ViT through LoRA is a GPU's work (``dogsearch train vit``). Its first blocks are general; what
tells dogs and breeds apart is mostly made in the last ones. So the photos (and augmented views of them) run once
through the default model's first ``12 - B`` blocks, in bf16, and their tokens are kept on disk (fp16, ~200 KB a
view); training then runs only the last ``B`` blocks, forward and backward: a quarter of the network for B = 3.
The frozen model's own vector of every view is kept too, for the distillation that holds what it already knows,
and the ImageNet CNN's breed vector of the same view (``models/fusion.py``'s square-rooted breed probabilities):
``train --distill-breeds W`` distils from the two side by side, the breed fusion's vector, to carry ImageNet's 118
breeds into the ViT itself (issue 18).

    python scripts/vit-top-blocks.py cache --data ../shared/data --cache /tmp/vtb
    python scripts/vit-top-blocks.py train --cache /tmp/vtb --out /tmp/vtb/run1
    python scripts/vit-top-blocks.py save --run /tmp/vtb/run1 --model-id vit_small_dinov2-lora-dogs-v2-top

Training sets (the fusion's, ``dogsearch/training/fusion/train.py``): Imagewoof train's train photos (breeds),
DogFaceNet's train dogs (faces), dog-id-body's train dogs (whole bodies). The epoch kept is chosen on the
validation sets alone (Oxford's 4 val breeds, Imagewoof val, DogFaceNet's and dog-id-body's val dogs) by the
fusion's rule: the best mean mAP among epochs that cost no validation set more than 0.005 mAP against the model
before. The held-out sets are embedded only for the kept epoch. ``save`` writes a LoRA delta on the default
(``"kind": "lora"``, base ``vit_small_dinov2-lora-dogs-v1``) whose served vectors ``dogsearch eval`` then measures.
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

from dogsearch.models.fusion import breed_root_probs
from dogsearch.training.embedder.augment import DOMAIN_AUGMENT as AUGMENT
from dogsearch.training.fusion.train import VAL_SETS as VAL

BASE = "vit_small_dinov2-lora-dogs-v1"
TRAIN = {"iw_train": ("breed", 2), "dfn_train": ("face", 2), "body_train": ("body", 6)}
HELD_OUT = ("iw_dev", "dfn_heldout", "oxford_heldout", "oxford", "body_heldout")


def _command() -> str:
    """This run's command line, for the files that record how a model was made."""
    return "python scripts/vit-top-blocks.py " + shlex.join(sys.argv[1:])


def _model():
    from dogsearch.models.registry import build_backbone

    vit, model_id, config = build_backbone(BASE)
    return vit.eval(), model_id, config


def _cnn():
    """EfficientNet-Lite0 with its ImageNet head, and its mean and std: the teacher of ImageNet's 118 breeds."""
    import timm.data

    from dogsearch.models.efficientnet import LITE0_MODEL
    from dogsearch.models.embedding import split_eval_transform
    from dogsearch.models.registry import build_backbone

    cnn, _, config = build_backbone(LITE0_MODEL, num_classes=1000)
    _, mean, std = split_eval_transform(timm.data.create_transform(**config, is_training=False))
    return cnn.eval(), mean, std


def _lower(vit, x: torch.Tensor, upto: int) -> torch.Tensor:
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    for block in vit.blocks[:upto]:
        x = block(x)
    return x


def _upper(vit, tokens: torch.Tensor, start: int) -> torch.Tensor:
    x = tokens
    for block in vit.blocks[start:]:
        x = block(x)
    return vit.norm(x)[:, 0]  # the CLS token after the final norm: what the model serves


# -- cache ------------------------------------------------------------------------------------------------------------

def cache(args: argparse.Namespace) -> int:
    import timm.data

    from dogsearch.models.dinov2 import IMG_SIZE
    from dogsearch.models.embedding import pixels, split_eval_transform
    from dogsearch.training.embedder.augment import image_augment
    from dogsearch.training.fusion.train import set_items

    torch.set_num_threads(args.threads)
    vit, model_id, config = _model()
    resize, mean, std = split_eval_transform(timm.data.create_transform(**config, is_training=False))
    cnn, cnn_mean, cnn_std = _cnn()
    start = 12 - args.blocks
    out = args.cache
    out.mkdir(parents=True, exist_ok=True)
    meta = {"base": BASE, "base_model_id": model_id, "start": start, "sets": {},
            "command": _command()}
    plan = [(name, *TRAIN[name]) for name in TRAIN] + [(name, None, 1) for name in (*VAL, *HELD_OUT)
                                                         if name != "oxford"]
    torch.manual_seed(0)
    for name, domain, views in plan:
        items = set_items(name, args.data, breed_per_label=args.breed_per_label)
        rows = [(path, label, v) for path, label in items for v in range(views)]
        tokens = np.lib.format.open_memmap(out / f"{name}.tokens.npy", mode="w+", dtype=np.float16,
                                           shape=(len(rows), 257, 384))
        teacher = np.zeros((len(rows), 384), np.float32)
        breeds = np.zeros((len(rows), 119), np.float32)
        augment = image_augment(IMG_SIZE, mean.flatten().tolist(), std.flatten().tolist(),
                                **AUGMENT[domain]) if domain else None
        for i in tqdm(range(0, len(rows), args.batch), desc=name, unit="batch"):
            batch = []
            for path, _, v in rows[i:i + args.batch]:
                with Image.open(path) as im:
                    im = im.convert("RGB")
                    if v == 0:  # view 0 is the photo as the service sees it
                        batch.append((pixels(resize(im)).float() / 255 - mean) / std)
                    else:
                        batch.append(augment(im))
            x = torch.stack(batch)
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                h = _lower(vit, x, start)
                teacher[i:i + len(batch)] = F.normalize(_upper(vit, h, start).float(), dim=1).numpy()
                # the CNN on the same view: its own mean and std over the same pixels
                logits = cnn(((x * std + mean) - cnn_mean) / cnn_std)
            breeds[i:i + len(batch)] = breed_root_probs(logits.float()).numpy()
            tokens[i:i + len(batch)] = h.float().numpy().astype(np.float16)
        tokens.flush()
        np.save(out / f"{name}.teacher.npy", teacher)
        np.save(out / f"{name}.breeds.npy", breeds)
        meta["sets"][name] = {"domain": domain, "views": views, "paths": [str(p) for p, _, _ in rows],
                              "labels": [lab for _, lab, _ in rows], "view": [v for _, _, v in rows]}
        (out / "meta.json").write_text(json.dumps(meta))
    return 0


# -- train ------------------------------------------------------------------------------------------------------------

class Cached:
    def __init__(self, folder: Path, name: str, meta: dict) -> None:
        info = meta["sets"][name]
        self.tokens = np.load(folder / f"{name}.tokens.npy", mmap_mode="r")
        self.teacher = torch.from_numpy(np.load(folder / f"{name}.teacher.npy"))
        breeds = folder / f"{name}.breeds.npy"
        self.breeds = torch.from_numpy(np.load(breeds)) if breeds.is_file() else None
        names = sorted(set(info["labels"]))
        index = {n: i for i, n in enumerate(names)}
        self.labels = torch.tensor([index[x] for x in info["labels"]])
        self.label_names, self.view = info["labels"], np.array(info["view"])

    def served(self) -> np.ndarray:
        return np.flatnonzero(self.view == 0)


@torch.no_grad()
def _embed(vit, data: Cached, rows: np.ndarray, start: int, batch: int = 128) -> np.ndarray:
    out = []
    for i in range(0, len(rows), batch):
        h = torch.from_numpy(np.asarray(data.tokens[rows[i:i + batch]], dtype=np.float32))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out.append(F.normalize(_upper(vit, h, start).float(), dim=1).numpy())
    return np.concatenate(out)


def _metrics(vit, sets: dict[str, Cached], names, start: int) -> dict:
    from dogsearch.eval.retrieval import retrieval_metrics

    out = {}
    for name in names:
        rows = sets[name].served()
        m = retrieval_metrics(_embed(vit, sets[name], rows, start), [sets[name].label_names[r] for r in rows])
        out[name] = {k: round(v, 4) for k, v in m.items()}
    return out


def _oxford(folder: Path, meta: dict) -> None:
    """Oxford's 13 breeds are its val and held-out breeds together: one set for the report."""
    if "oxford" in meta["sets"]:
        return
    a, b = (np.load(folder / f"{n}.tokens.npy", mmap_mode="r") for n in ("oxford_val", "oxford_heldout"))
    tokens = np.lib.format.open_memmap(folder / "oxford.tokens.npy", mode="w+", dtype=np.float16,
                                       shape=(len(a) + len(b), *a.shape[1:]))
    tokens[:len(a)], tokens[len(a):] = a, b
    tokens.flush()
    for part in ("teacher", "breeds"):
        np.save(folder / f"oxford.{part}.npy", np.concatenate([np.load(folder / f"{n}.{part}.npy")
                                                               for n in ("oxford_val", "oxford_heldout")]))
    va, vb = meta["sets"]["oxford_val"], meta["sets"]["oxford_heldout"]
    meta["sets"]["oxford"] = {k: va[k] + vb[k] for k in ("paths", "labels", "view")} | {"domain": None, "views": 1}
    (folder / "meta.json").write_text(json.dumps(meta))


def train(args: argparse.Namespace) -> int:
    from dogsearch.models import lora as L
    from dogsearch.training.embedder.losses import relational_distill, supcon
    from dogsearch.training.embedder.train import pk_batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    meta = json.loads((args.cache / "meta.json").read_text())
    _oxford(args.cache, meta)
    start = meta["start"]
    sets = {name: Cached(args.cache, name, meta) for name in (*TRAIN, *VAL, *HELD_OUT)}
    vit, _, _ = _model()
    targets = tuple(f"blocks.{i}.{t}" for i in range(start, 12) for t in L.VIT_TARGETS)
    L.add_lora(vit, args.rank, args.alpha, targets)
    trainable = [f"blocks.{i}.norm" for i in range(start, 12)] + ["norm."]
    for name, param in vit.named_parameters():
        param.requires_grad = "lora_" in name or name.startswith(tuple(trainable))
    full = [n for n, p in vit.named_parameters() if p.requires_grad and "lora_" not in n]
    params = [p for p in vit.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    total = args.epochs * args.steps
    warm = args.steps // 2
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "log.jsonl", "w")

    def record(row: dict) -> None:
        print(json.dumps(row), flush=True)
        log.write(json.dumps(row) + "\n")
        log.flush()

    vit.eval()
    before = _metrics(vit, sets, VAL, start)
    floor = {n: before[n]["map"] - args.max_drop for n in VAL}
    record({"epoch": 0, "val": before, "val_score": round(float(np.mean([before[n]["map"] for n in VAL])), 4)})
    breed, face, body = sets["iw_train"], sets["dfn_train"], sets["body_train"]
    best, best_epoch, best_delta = -1.0, 0, None
    for epoch in range(1, args.epochs + 1):
        vit.train()
        t0, losses = time.monotonic(), []
        for _ in tqdm(range(args.steps), desc=f"epoch {epoch}", unit="step", file=sys.stderr):
            picks = [(breed, torch.randperm(len(breed.labels), generator=gen)[:args.breed_batch]),
                     (face, pk_batch(face.labels, args.face_p, args.k, gen)),
                     (body, pk_batch(body.labels, args.body_p, args.k, gen))]
            picks = [(d, idx.sort().values) for d, idx in picks]  # sorted: the memory map reads rows in order
            x = torch.cat([torch.from_numpy(np.asarray(d.tokens[r.numpy()], dtype=np.float32)) for d, r in picks])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                e = _upper(vit, x, start).float()
            e = F.normalize(e, dim=1)
            teacher = torch.cat([d.teacher[r] for d, r in picks])
            if args.distill_breeds:  # the neighbours of the ViT fused with the CNN's breeds (models/fusion.py)
                breeds = torch.cat([d.breeds[r] for d, r in picks])
                teacher = torch.cat([teacher, args.distill_breeds * breeds], dim=1)
            parts, at = {}, 0
            for (d, r), w, key in zip(picks, (args.w_breed, args.w_face, args.w_body), ("breed", "face", "body"),
                                      strict=True):
                parts[key] = w * supcon(e[at:at + len(r)], d.labels[r], args.temperature)
                at += len(r)
            parts["distill"] = args.w_distill * relational_distill(e, teacher, args.distill_temperature)
            loss = sum(parts.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append({k: v.item() for k, v in parts.items()})
        vit.eval()
        val = _metrics(vit, sets, VAL, start)
        score = round(float(np.mean([val[n]["map"] for n in VAL])), 4)
        within = all(val[n]["map"] >= floor[n] for n in VAL)
        record({"epoch": epoch, "minutes": round((time.monotonic() - t0) / 60, 2),
                "loss": {k: round(float(np.mean([s[k] for s in losses])), 4) for k in losses[0]},
                "val": val, "val_score": score, "within": within})
        if within and score > best:
            best, best_epoch, best_delta = score, epoch, {k: v.clone() for k, v in L.delta_state(vit, full).items()}
    summary = {"best_epoch": best_epoch, "val_score": best,
               "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    if best_delta is not None:
        torch.save(best_delta, args.out / "delta.pt")
        params = dict(vit.named_parameters())
        with torch.no_grad():
            for key, value in best_delta.items():
                params[key].copy_(value)
        vit.eval()
        summary["held_out"] = _metrics(vit, sets, HELD_OUT, start)
    summary["command"] = _command()
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    record(summary)
    return 0 if best_delta is not None else 1


def save(args: argparse.Namespace) -> int:
    """The kept epoch's delta as a model folder: a LoRA on the default, with its config and the commands."""
    from dogsearch.models import lora as L
    from dogsearch.models.trained import delta_sha256

    summary = json.loads((args.run / "summary.json").read_text())
    train_args = summary["args"]
    meta = json.loads((Path(train_args["cache"]) / "meta.json").read_text())
    folder = args.models_dir / args.model_id
    sha = L.save_delta(torch.load(args.run / "delta.pt"), folder)
    rank, alpha, start = int(train_args["rank"]), float(train_args["alpha"]), meta["start"]
    config = {
        "model_id": args.model_id, "kind": "lora", "base": meta["base"], "base_model_id": meta["base_model_id"],
        "base_sha256": delta_sha256(BASE),
        "lora": {"rank": rank, "alpha": alpha, "targets": [f"blocks.{i}.{t}" for i in range(start, 12)
                                                           for t in L.VIT_TARGETS]},
        "recipe": train_args, "best_epoch": summary["best_epoch"], "validation": summary["val_score"],
        "cache_command": meta.get("command"), "command": summary["command"], "sha256": sha,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps({"model": str(folder), "sha256": sha}))
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("cache")
    c.add_argument("--data", type=Path, default=Path("../shared/data"))
    c.add_argument("--cache", type=Path, required=True)
    c.add_argument("--blocks", type=int, default=3, help="the last blocks to train")
    c.add_argument("--breed-per-label", type=int, default=200, help="Imagewoof train photos a breed (0: all)")
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--threads", type=int, default=2)
    t = sub.add_parser("train")
    t.add_argument("--cache", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--epochs", type=int, default=5)
    t.add_argument("--steps", type=int, default=50, help="steps an epoch")
    t.add_argument("--rank", type=int, default=16)
    t.add_argument("--alpha", type=float, default=16.0)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--breed-batch", type=int, default=96)
    t.add_argument("--face-p", type=int, default=16)
    t.add_argument("--body-p", type=int, default=8)
    t.add_argument("--k", type=int, default=4)
    t.add_argument("--w-breed", type=float, default=1.0)
    t.add_argument("--w-face", type=float, default=1.0)
    t.add_argument("--w-body", type=float, default=1.0)
    t.add_argument("--w-distill", type=float, default=1.0)
    t.add_argument("--distill-breeds", type=float, default=0.0, metavar="W",
                   help="distil from the ViT's vector fused with W x the CNN's breed vector (0: the ViT's alone)")
    t.add_argument("--temperature", type=float, default=0.07)
    t.add_argument("--distill-temperature", type=float, default=0.1)
    t.add_argument("--max-drop", type=float, default=0.005)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2)
    s = sub.add_parser("save")
    s.add_argument("--run", type=Path, required=True, help="a train --out folder")
    s.add_argument("--model-id", required=True)
    s.add_argument("--models-dir", type=Path, default=Path("models"))
    args = p.parse_args()
    return {"cache": cache, "train": train, "save": save}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
