"""Fine-tune a ViT backbone end to end through LoRA adapters, on photos (a GPU's work).

Each step draws a breed batch (random Imagewoof *train* photos) and an identity batch (P dogs x K faces of the
DogFaceNet *train* dogs), makes two augmented views of every photo (``--augment pil``: ``augment.image_augment`` in
the loader's processes, each photo decoded again for every view; ``--augment device``: every photo decoded once at
the start, ``augment.device_views`` on the batch where the model trains, so a GPU is not held back by the CPU's
decoding) and runs them all
through the ViT, whose attention and MLP projections carry LoRA adapters (``dogsearch.models.lora``) and whose
LayerNorms train too. Losses on the served embedding (the CLS token after the final norm, L2-normalised), per
domain, weighted and summed:
* ``simclr``: NT-Xent between the two views' 128-d projections (SimCLR's projection head, label-free);
* ``label``: supervised contrastive loss with breed / dog labels;
* ``distill``: relational distillation from a frozen teacher (the CNN) run on the same views.
AdamW, linear warm-up then cosine, bf16 autocast on GPU, seeded (each epoch's sampling and augmentation are
seeded by the epoch, so ``--resume`` continues where a checkpoint left off). After every epoch the model
embeds the *val* splits as the service does (``EmbeddingModel``: resize, centre crop, normalise; bf16 on a GPU);
the epoch with the best mean recall@1 is the one saved, as a LoRA delta under ``models/<model-id>/``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import random
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

from dogsearch.eval.splits import labelled_images, select
from dogsearch.models import dinov2 as V
from dogsearch.models import lora as L
from dogsearch.training.embedder.augment import TwoViews, device_views, fit_square, image_augment
from dogsearch.training.embedder.config import FinetuneConfig
from dogsearch.training.embedder.heads import ProjectionHead
from dogsearch.training.embedder.train import (
    contrastive_losses,
    optimizer_step,
    pk_batch,
    validation_record,
    warmup_cosine,
)

CHECKPOINT = "finetune-checkpoint.pt"
LOG = "log.jsonl"


class Photos(Dataset):
    """(view 1, view 2, label) of each photo."""

    def __init__(self, items: list[tuple[Path, int]], transform) -> None:
        self.items, self.views = items, TwoViews(transform)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        with Image.open(path) as im:
            v1, v2 = self.views(im.convert("RGB"))
        return v1, v2, label


class PKBatches:
    """``steps`` identity batches of P dogs x K faces, drawn from a seeded generator."""

    def __init__(self, labels: torch.Tensor, p: int, k: int, steps: int, seed: int) -> None:
        self.labels, self.p, self.k, self.steps, self.seed = labels, p, k, steps, seed

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed)
        for _ in range(self.steps):
            yield pk_batch(self.labels, self.p, self.k, gen).tolist()


def labelled(root: Path, kind: str, split: str, limit: int | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, label index) of one split's photos whose label has at least 2 (leave-one-out needs a partner);
    ``limit`` keeps about that many photos: every n-th of the breeds, the first dogs' whole."""
    items = select(labelled_images(root), kind, split)  # type: ignore[arg-type]
    counts = Counter(lab for _, lab in items)
    items = [(p, lab) for p, lab in items if counts[lab] >= 2]
    if limit:
        items = items[:: max(1, len(items) // limit)] if kind == "breed" else items[:limit]
        counts = Counter(lab for _, lab in items)
        items = [(p, lab) for p, lab in items if counts[lab] >= 2]
    names = sorted({lab for _, lab in items})
    index = {n: i for i, n in enumerate(names)}
    return [(p, index[lab]) for p, lab in items], names


class Decoded(Dataset):
    """Each photo scaled to fit a square (``augment.fit_square``), uint8: what ``decode_all`` collects."""

    def __init__(self, items: list[tuple[Path, int]], side: int) -> None:
        self.items, self.side = items, side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        with Image.open(self.items[i][0]) as im:
            square, size = fit_square(im, self.side)
        return square, torch.tensor(size)


def decode_all(items: list[tuple[Path, int]], side: int, workers: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every photo decoded once (by `workers` processes): uint8 (N, 3, side, side) and the photos' sizes (N, 2)."""
    squares, sizes = [], []
    for square, size in DataLoader(Decoded(items, side), batch_size=64, num_workers=workers):
        squares.append(square)
        sizes.append(size)
    return torch.cat(squares), torch.cat(sizes)


def _seed_worker(worker_id: int) -> None:  # torchvision's random transforms draw from python's and torch's RNGs
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class Finetuner:
    def __init__(self, config: FinetuneConfig, *, student: torch.nn.Module, teacher: torch.nn.Module | None,
                 teacher_norm: tuple, breed: list, identity: list, breed_val: list, identity_val: list,
                 device: str, out_dir: Path, workers: int = 8) -> None:
        from dogsearch.models.embedding import EmbeddingModel

        self.config = c = config
        self.device = torch.device(device)
        self.out_dir = Path(out_dir)
        self.workers = workers
        torch.manual_seed(c.seed)
        L.add_lora(student, c.rank, c.alpha)
        for name, param in student.named_parameters():
            param.requires_grad = "lora_" in name or ".norm" in name or name.startswith("norm.")
        self.full = [n for n, p in student.named_parameters() if p.requires_grad and "lora_" not in n]
        self.student = student.to(self.device)
        self.teacher = teacher.to(self.device).eval() if teacher is not None else None
        self.proj = ProjectionHead(student.num_features, 512, 128).to(self.device)
        mean, std = V.DATA_CONFIG["mean"], V.DATA_CONFIG["std"]
        # the views are normalised for the student; the teacher wants its own mean and std
        as_col = lambda v: torch.tensor(v, device=self.device).view(1, 3, 1, 1)  # noqa: E731
        self._renorm = [as_col(v) for v in (mean, std, *teacher_norm)]
        if c.augment not in ("pil", "device"):
            raise ValueError(f"--augment is pil or device, not {c.augment!r}")
        self.augments = {"breed": dict(min_scale=c.breed_min_scale, jitter=c.jitter, grey_p=0.1, blur_p=0.2),
                         "identity": dict(min_scale=c.face_min_scale, jitter=c.jitter, grey_p=0.1, blur_p=0.2)}
        self.breed = Photos(breed, image_augment(V.IMG_SIZE, mean, std, **self.augments["breed"]))
        self.identity = Photos(identity, image_augment(V.IMG_SIZE, mean, std, **self.augments["identity"]))
        self.decoded = {}  # --augment device: each set's photos, decoded once, with their labels
        if c.augment == "device":
            for name, items in (("breed", breed), ("identity", identity)):
                squares, sizes = decode_all(items, c.augment_side, workers)
                self.decoded[name] = (squares, sizes, torch.tensor([lab for _, lab in items]))
        self.identity_labels = torch.tensor([lab for _, lab in identity])
        if len(breed) < c.breed_batch:
            raise ValueError(f"{len(breed)} breed photos do not fill one batch of --breed-batch {c.breed_batch}")
        self.steps_per_epoch = len(breed) // c.breed_batch
        trainable = [p for p in self.student.parameters() if p.requires_grad] + list(self.proj.parameters())
        self.opt = torch.optim.AdamW(trainable, lr=c.lr, weight_decay=c.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_cosine(
            int(self.steps_per_epoch * c.warmup_epochs), self.steps_per_epoch * c.epochs))
        self.served = EmbeddingModel(self.student, model_id="finetune", data_config=V.DATA_CONFIG,
                                     device=self.device, precision="bf16" if self.device.type == "cuda" else "fp32")
        self.val = {name: self._pixels(items) for name, items in (("breed", breed_val), ("identity", identity_val))}
        self.epoch, self.best, self.best_epoch, self.history = 0, -1.0, 0, []
        self.best_delta: dict[str, torch.Tensor] | None = None

    def _pixels(self, items: list[tuple[Path, int]]) -> tuple[torch.Tensor, list[int]]:
        """Validation photos preprocessed once, as the service preprocesses them."""
        tensors = []
        for path, _ in items:
            with Image.open(path) as im:
                tensors.append(self.served.preprocess(im.convert("RGB")))
        return torch.stack(tensors), [lab for _, lab in items]

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _loaders(self):
        c = self.config
        seed = c.seed * 1000 + self.epoch
        # with no loader processes the views draw from this process's generators: seed them by the epoch too
        random.seed(seed)
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        breeds = BatchSampler(RandomSampler(self.breed, generator=gen), c.breed_batch, drop_last=True)
        dogs = PKBatches(self.identity_labels, c.ident_p, c.ident_k, self.steps_per_epoch, seed + 2)
        if self.decoded:
            views = torch.Generator(device=self.device).manual_seed(seed + 4)
            return ((self._views("breed", b, views), self._views("identity", f, views))
                    for b, f in zip(breeds, dogs, strict=True))
        common = {"num_workers": self.workers, "pin_memory": self.device.type == "cuda",
                  "worker_init_fn": _seed_worker, "persistent_workers": False}
        breed = DataLoader(self.breed, batch_sampler=breeds, generator=torch.Generator().manual_seed(seed + 1),
                           **common)
        identity = DataLoader(self.identity, batch_sampler=dogs, generator=torch.Generator().manual_seed(seed + 3),
                              **common)
        return zip(breed, identity, strict=True)  # both yield steps_per_epoch batches

    def _views(self, name: str, batch: list[int], generator: torch.Generator):
        """(view 1, view 2, labels) of a batch of decoded photos, augmented on the device."""
        squares, sizes, labels = self.decoded[name]
        index = torch.tensor(batch)
        photos = squares[index].to(self.device, non_blocking=True)
        mean, std = V.DATA_CONFIG["mean"], V.DATA_CONFIG["std"]
        return (*(device_views(photos, sizes[index], V.IMG_SIZE, mean, std, generator=generator,
                               **self.augments[name]) for _ in range(2)), labels[index])

    def step(self, breed_batch, identity_batch) -> dict:
        self.student.train()
        self.proj.train()
        (b1, b2, yb), (f1, f2, yf) = breed_batch, identity_batch
        x = torch.cat([b1, b2, f1, f2]).to(self.device, non_blocking=True)
        nb = 2 * len(yb)
        with self._autocast():
            e = F.normalize(self.student(x).float(), dim=1)
            p = self.proj(e).float()
            t = None
            if self.teacher is not None:
                with torch.no_grad():
                    mean, std, t_mean, t_std = self._renorm
                    t = F.normalize(self.teacher((x * std + mean - t_mean) / t_std).float(), dim=1)
        c = self.config  # the teacher saw the same views: distillation is over both
        parts = {f"breed_{k}": v for k, v in contrastive_losses(
            e[:nb], p[:nb], yb.to(self.device), None if t is None else t[:nb], c, c.w_breed).items()}
        parts |= {f"identity_{k}": v for k, v in contrastive_losses(
            e[nb:], p[nb:], yf.to(self.device), None if t is None else t[nb:], c, c.w_identity).items()}
        return optimizer_step(self.opt, self.sched, parts)

    @torch.no_grad()
    def validate(self) -> dict:
        self.student.eval()
        return validation_record({name: (np.concatenate([self.served.embed(pixels[i:i + 256])
                                                          for i in range(0, len(pixels), 256)]), labels)
                                  for name, (pixels, labels) in self.val.items()})

    def delta(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in L.delta_state(self.student, self.full).items()}

    def fit(self, *, resume: bool = False, stop_after: int | None = None, max_minutes: float | None = None,
            log=print) -> None:
        """Train to ``config.epochs``; ``stop_after`` stops after that epoch of the same schedule (as if
        interrupted there), ``max_minutes`` after the last epoch that fits in that time (the epoch is logged:
        ``--stop-after`` with it reproduces the run)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ckpt = self.out_dir / CHECKPOINT
        if resume and ckpt.is_file():
            self.load_checkpoint(ckpt)
            log(f"resumed after epoch {self.epoch}")
        else:
            (self.out_dir / LOG).unlink(missing_ok=True)
            log(json.dumps({"epoch": 0} | self.validate()))
        start, first = time.monotonic(), self.epoch
        last = min(self.config.epochs, stop_after or self.config.epochs)
        while self.epoch < last:
            t0 = time.monotonic()
            losses = [self.step(b, f) for b, f in self._loaders()]
            self.epoch += 1
            record = {"epoch": self.epoch, "lr": self.sched.get_last_lr()[0],
                      "images/s": round(self.steps_per_epoch * (self.config.breed_batch + self.config.ident_p *
                                                                 self.config.ident_k) / (time.monotonic() - t0), 1)}
            record |= {k: round(float(np.mean([s[k] for s in losses])), 5) for k in losses[0]}
            record |= self.validate()
            if record["val_score"] > self.best:
                self.best, self.best_epoch, self.best_delta = record["val_score"], self.epoch, self.delta()
            self.history.append(record)
            with open(self.out_dir / LOG, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(json.dumps(record))
            self.save_checkpoint(ckpt)
            spent, done = (time.monotonic() - start) / 60, self.epoch - first  # this call's epochs only
            if max_minutes and spent * (done + 1) / done > max_minutes and self.epoch < last:
                log(f"stopping after epoch {self.epoch} (--stop-after {self.epoch}): another would pass "
                    f"--max-minutes {max_minutes}")
                break

    def save_checkpoint(self, path: Path) -> None:
        blob = {"config": dataclasses.asdict(self.config), "delta": self.delta(), "proj": self.proj.state_dict(),
                "opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "epoch": self.epoch,
                "best": self.best, "best_epoch": self.best_epoch, "history": self.history,
                "best_delta": self.best_delta}
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)

    def load_checkpoint(self, path: Path) -> None:
        blob = torch.load(path, map_location="cpu", weights_only=False)  # a GPU's checkpoint resumes anywhere
        if blob["config"] != dataclasses.asdict(self.config):
            raise ValueError(f"{path} was written with other settings; use a new --out folder")
        params = dict(self.student.named_parameters())
        with torch.no_grad():
            for key, value in blob["delta"].items():
                params[key].copy_(value)
        self.proj.load_state_dict(blob["proj"])
        self.opt.load_state_dict(blob["opt"])
        self.sched.load_state_dict(blob["sched"])
        self.epoch, self.best, self.best_epoch = blob["epoch"], blob["best"], blob["best_epoch"]
        self.history, self.best_delta = blob["history"], blob["best_delta"]


# -- command line (arguments: dogsearch/training/embedder/cli.py) ------------------------------------------------------

def _build(name: str, weights: Path | None) -> tuple[torch.nn.Module, str, dict]:
    from safetensors.torch import load_file

    from dogsearch.models.registry import build_backbone

    if name == V.VIT_MODEL and weights is not None:
        return V.from_state_dict(load_file(str(weights))), V.MODEL_ID, dict(V.DATA_CONFIG)
    return build_backbone(name, weights)


def run(args: argparse.Namespace) -> int:
    if args.base != V.VIT_MODEL:
        raise SystemExit(f"LoRA fine-tuning is set up for {V.VIT_MODEL} (its ViT blocks), not {args.base!r}")
    config = FinetuneConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(FinetuneConfig)})
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    random.seed(config.seed)
    np.random.seed(config.seed)
    student, base_id, _ = _build(args.base, args.base_weights)
    teacher, teacher_norm = None, ((0.0,) * 3, (1.0,) * 3)
    if args.teacher != "none":
        teacher, _, tcfg = _build(args.teacher, args.teacher_weights)
        teacher_norm = (tuple(tcfg["mean"]), tuple(tcfg["std"]))
        print(json.dumps({"teacher": args.teacher, "mean": teacher_norm[0], "std": teacher_norm[1]}))
    breed, _ = labelled(args.breed_dir, "breed", "train", args.limit)
    breed_val, _ = labelled(args.breed_dir, "breed", "val", args.limit)
    identity, _ = labelled(args.identity_dir, "identity", "train", args.limit)
    identity_val, _ = labelled(args.identity_dir, "identity", "val", args.limit)
    print(json.dumps({"breed": len(breed), "breed_val": len(breed_val), "identity": len(identity),
                      "identity_val": len(identity_val)}))
    out = args.out or Path(".cache/train") / args.model_id
    tuner = Finetuner(config, student=student, teacher=teacher, teacher_norm=teacher_norm, breed=breed,
                      identity=identity, breed_val=breed_val, identity_val=identity_val, device=device,
                      out_dir=out, workers=args.workers)
    tuner.fit(resume=args.resume, stop_after=args.stop_after, max_minutes=args.max_minutes)
    folder = args.models_dir / args.model_id
    argv = sys.argv[sys.argv.index("vit") + 1:] if "vit" in sys.argv else sys.argv[1:]
    sha = L.save_delta(tuner.best_delta or tuner.delta(), folder)
    best = tuner.history[tuner.best_epoch - 1] if tuner.best_epoch else {}
    config_json = {
        "model_id": args.model_id, "kind": "lora", "base": args.base, "base_model_id": base_id,
        "lora": {"rank": config.rank, "alpha": config.alpha, "targets": list(L.VIT_TARGETS)},
        "teacher": None if args.teacher == "none" else args.teacher, "recipe": dataclasses.asdict(config),
        "epochs_run": tuner.epoch, "best_epoch": tuner.best_epoch,
        "validation": {k: v for k, v in best.items() if k.startswith("val_")},
        "command": "dogsearch train vit " + shlex.join(argv),
        "sha256": sha,
    }
    (folder / "config.json").write_text(json.dumps(config_json, indent=2) + "\n")
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tuner.history))
    print(json.dumps({"model": args.model_id, "best_epoch": tuner.best_epoch, "sha256": sha}))
    return 0
