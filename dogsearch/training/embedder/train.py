"""Train an embedding head on cached, frozen-backbone features.

Each step takes a breed batch and an identity batch (P dogs x K photos) and makes two feature-level
views of each. Losses, weighted and summed:
* ``simclr``: NT-Xent between the two views' 128-d projections (SimCLR, label-free);
* ``breed`` / ``identity``: supervised contrastive loss on the embeddings with breed / dog labels;
* ``distill``: relational distillation from a teacher's features of the same photos (e.g. the CNN
  for a ViT head, or the base model itself to keep what it already knows).
AdamW with a cosine schedule; bf16 autocast on GPU; seeded; loss and validation metrics logged each
epoch; a checkpoint after every epoch (``--resume`` continues from it exactly); the epoch with the best
validation recall@1 (mean of breed and identity, on splits carved from the training data) is kept.
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dogsearch.eval.retrieval import retrieval_metrics
from dogsearch.training.embedder.augment import feature_views
from dogsearch.training.embedder.config import TrainConfig
from dogsearch.training.embedder.heads import EmbeddingHead, ProjectionHead
from dogsearch.training.embedder.losses import nt_xent, relational_distill, supcon

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


@dataclass
class Split:
    """Features (N, dim) with integer labels; ``teacher`` is the same photos under another model."""
    features: torch.Tensor
    labels: torch.Tensor
    teacher: torch.Tensor | None = None

    @classmethod
    def from_cache(cls, data: dict, teacher: dict | None = None) -> Split:
        names = sorted(set(data["labels"]))
        index = {n: i for i, n in enumerate(names)}
        t = None
        if teacher is not None:
            if teacher["paths"] != data["paths"]:
                raise ValueError("teacher features are not of the same photos in the same order")
            t = teacher["features"].float()
        return cls(data["features"].float(), torch.tensor([index[n] for n in data["labels"]]), t)


@dataclass
class TrainData:
    breed: Split
    identity: Split
    breed_val: Split
    identity_val: Split


@dataclass
class State:
    epoch: int = 0
    best: float = -1.0
    best_epoch: int = -1
    history: list = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warmup_cosine(warm: int, total: int):
    """The learning-rate factor at each step: linear warm-up over ``warm`` steps, then cosine to zero at ``total``."""
    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
    return lr_at


def contrastive_losses(e: torch.Tensor, p: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, config,
                       w_label: float) -> dict:
    """One domain's weighted loss terms for a batch of two views (rows: every view 1, then every view 2): NT-Xent
    between the views' projections ``p``, supervised contrastive loss on the embeddings ``e`` with labels ``y``, and
    relational distillation of the first ``len(t)`` embeddings onto the teacher's vectors ``t`` of the same rows."""
    c, n = config, y.shape[0]
    out = {}
    if c.w_simclr:
        out["simclr"] = c.w_simclr * nt_xent(p[:n], p[n:], c.temperature)
    if w_label:
        out["label"] = w_label * supcon(e, torch.cat([y, y]), c.temperature)
    if c.w_distill and t is not None:
        out["distill"] = c.w_distill * relational_distill(e[:len(t)], t, c.distill_temperature)
    return out


def optimizer_step(opt: torch.optim.Optimizer, sched, parts: dict) -> dict:
    """Backpropagate the sum of ``parts``, step; returns the loss and each part as numbers, for the log."""
    loss = sum(parts.values())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    return {"loss": loss.item()} | {k: v.item() for k, v in parts.items()}


def validation_record(embedded: dict[str, tuple[np.ndarray, list]]) -> dict:
    """Leave-one-out metrics of each validation set ({name: (embeddings, labels)}) and ``val_score``, the mean
    recall@1 of breeds and dogs that picks the epoch kept."""
    out = {}
    for name, (embeddings, labels) in embedded.items():
        m = retrieval_metrics(embeddings, labels)
        out |= {f"val_{name}_{k}": round(v, 4) for k, v in m.items()}
    out["val_score"] = round((out["val_breed_recall@1"] + out["val_identity_recall@1"]) / 2, 4)
    return out


def pk_batch(labels: torch.Tensor, p: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of up to ``p`` random labels with >= 2 samples, up to ``k`` random samples each."""
    uniq, counts = torch.unique(labels, return_counts=True)
    eligible = uniq[counts >= 2]
    chosen = eligible[torch.randperm(len(eligible), generator=gen)[:p]]
    out = []
    for lab in chosen.tolist():
        idx = torch.nonzero(labels == lab).flatten()
        out.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    return torch.cat(out)


class Trainer:
    def __init__(self, config: TrainConfig, data: TrainData, out_dir: Path) -> None:
        self.config = c = config
        self.data = data
        self.out_dir = Path(out_dir)
        self.device = torch.device(c.device)
        seed_everything(c.seed)
        in_dim = data.breed.features.shape[1]
        self.head = EmbeddingHead(in_dim, c.hidden, c.out_dim, c.dropout).to(self.device)
        self.proj = ProjectionHead(c.out_dim, 512, c.proj_dim).to(self.device)
        params = list(self.head.parameters()) + list(self.proj.parameters())
        self.opt = torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        self.steps_per_epoch = max(1, math.ceil(len(data.breed.labels) / c.batch_size))
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, warmup_cosine(
            int(self.steps_per_epoch * c.warmup_epochs), self.steps_per_epoch * c.epochs))
        self.gen = torch.Generator().manual_seed(c.seed)
        self.state = State()
        self.best_head: dict | None = None

    # -- one step ---------------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _losses(self, split: Split, idx: torch.Tensor, w_label: float) -> dict:
        c = self.config
        x = split.features[idx]
        y = split.labels[idx].to(self.device)
        # views are drawn on the CPU from the saved generator, so a resumed run draws the same ones
        v1, v2 = (v.to(self.device) for v in
                  feature_views(x, drop=c.feature_drop, noise=c.feature_noise, generator=self.gen))
        with self._autocast():
            e = F.normalize(self.head(torch.cat([v1, v2])).float(), dim=1)
            p = self.proj(e).float()
        t = split.teacher[idx].to(self.device) if split.teacher is not None else None  # of the photos, not views
        return contrastive_losses(e, p, y, t, c, w_label)

    def step(self) -> dict:
        c = self.config
        self.head.train()
        self.proj.train()
        b = self.data.breed
        breed_idx = torch.randint(len(b.labels), (c.batch_size,), generator=self.gen)
        ident_idx = pk_batch(self.data.identity.labels, c.ident_p, c.ident_k, self.gen)
        parts = {f"breed_{k}": v for k, v in self._losses(b, breed_idx, c.w_breed).items()}
        parts |= {f"identity_{k}": v for k, v in
                  self._losses(self.data.identity, ident_idx, c.w_identity).items()}
        return optimizer_step(self.opt, self.sched, parts)

    # -- evaluation -------------------------------------------------------------------------------
    @torch.no_grad()
    def embed(self, features: torch.Tensor) -> np.ndarray:
        self.head.eval()
        out = [F.normalize(self.head(features[i:i + 1024].to(self.device)).float(), dim=1).cpu()
               for i in range(0, len(features), 1024)]
        return torch.cat(out).numpy()

    def validate(self) -> dict:
        return validation_record({name: (self.embed(split.features), split.labels.tolist()) for name, split in
                                  (("breed", self.data.breed_val), ("identity", self.data.identity_val))})

    # -- epochs, checkpoints -------------------------------------------------------------------------
    def fit(self, *, resume: bool = False, log=print, stop_after: int | None = None) -> State:
        """Train to ``config.epochs`` (or only to ``stop_after``, as if interrupted there)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume and (self.out_dir / CHECKPOINT).is_file():
            self.load_checkpoint(self.out_dir / CHECKPOINT)
            log(f"resumed after epoch {self.state.epoch}")
        elif self.state.epoch == 0:
            torch.manual_seed(self.config.seed)  # dropout draws from the global generator
            (self.out_dir / LOG).unlink(missing_ok=True)  # a fresh run starts a fresh log
            base = self.validate()
            log(json.dumps({"epoch": 0} | base))
        last = min(self.config.epochs, stop_after or self.config.epochs)
        while self.state.epoch < last:
            losses = [self.step() for _ in range(self.steps_per_epoch)]
            self.state.epoch += 1
            record = {"epoch": self.state.epoch, "lr": self.sched.get_last_lr()[0]}
            record |= {k: round(float(np.mean([s[k] for s in losses])), 5) for k in losses[0]}
            record |= self.validate()
            if record["val_score"] > self.state.best:
                self.state.best, self.state.best_epoch = record["val_score"], self.state.epoch
                self.best_head = {k: v.detach().clone() for k, v in self.head.state_dict().items()}
            self.state.history.append(record)
            with open(self.out_dir / LOG, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            log(json.dumps(record))
            self.save_checkpoint(self.out_dir / CHECKPOINT)
        return self.state

    def save_checkpoint(self, path: Path) -> None:
        blob = {
            "config": asdict(self.config), "head": self.head.state_dict(), "proj": self.proj.state_dict(),
            "opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(), "state": asdict(self.state), "best_head": self.best_head,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)

    def load_checkpoint(self, path: Path) -> None:
        blob = torch.load(path, weights_only=False)
        if blob["config"] != asdict(self.config):
            raise ValueError(f"{path} was written with other settings; use a new --out folder")
        self.head.load_state_dict(blob["head"])
        self.proj.load_state_dict(blob["proj"])
        self.opt.load_state_dict(blob["opt"])
        self.sched.load_state_dict(blob["sched"])
        self.gen.set_state(blob["gen"])
        torch.set_rng_state(blob["torch_rng"])
        self.state = State(**blob["state"])
        self.best_head = blob["best_head"]

    def best_embedding_head(self) -> EmbeddingHead:
        head = EmbeddingHead(self.head.in_dim, self.head.hidden, self.head.out_dim)
        head.load_state_dict(self.best_head or self.head.state_dict())
        return head.eval()
