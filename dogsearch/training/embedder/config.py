"""Training settings (no torch import: the CLI parser reads them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 256
    ident_p: int = 64  # dogs per identity batch
    ident_k: int = 4  # photos per dog (fewer when a dog has fewer)
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    temperature: float = 0.07
    distill_temperature: float = 0.1
    hidden: int = 1024
    out_dim: int = 512
    proj_dim: int = 128
    dropout: float = 0.1
    feature_drop: float = 0.2
    feature_noise: float = 0.02
    w_simclr: float = 0.5
    w_breed: float = 1.0
    w_identity: float = 1.0
    w_distill: float = 1.0
    seed: int = 0
    device: str = "cpu"


@dataclass
class FinetuneConfig:
    epochs: int = 12
    breed_batch: int = 128
    ident_p: int = 32  # dogs per identity batch
    ident_k: int = 4  # faces per dog (fewer when a dog has fewer)
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    rank: int = 32
    alpha: float = 32.0
    temperature: float = 0.07
    distill_temperature: float = 0.1
    w_simclr: float = 0.5
    w_breed: float = 1.0
    w_identity: float = 1.0
    w_distill: float = 1.0
    breed_min_scale: float = 0.3
    face_min_scale: float = 0.6  # aligned faces: a small crop loses the face
    jitter: float = 0.3
    augment: str = "pil"  # "pil": each view decoded and augmented by the loader's processes; "device": see finetune
    augment_side: int = 320  # "device": each photo kept scaled to fit this square
    seed: int = 0
