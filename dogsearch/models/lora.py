"""Low-rank adapters (LoRA) on a backbone's linear layers: the small delta that ships for a fine-tuned backbone.

Training wraps each targeted ``nn.Linear`` in ``LoRALinear``: ``W x + s * B (A x)`` with ``W`` frozen and ``B``
zero-initialised, so training starts exactly at the base model. Serving merges the delta into ``W`` once
(``W + s * B A``): the served network is the base architecture, as fast as the base.

A shipped model is a folder ``models/<model-id>/`` holding ``config.json`` (``"kind": "lora"``, the base model's
name, rank, alpha, the sha256 of the delta file) and ``lora.safetensors`` (fp16): ``<layer>.lora_a`` /
``<layer>.lora_b`` per adapted layer, plus whole tensors trained alongside (LayerNorms), under their own names.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dogsearch.models import weights as W
from dogsearch.models.weights import WeightsError

DELTA_FILE = "lora.safetensors"
# a ViT block's attention and MLP projections (timm names)
VIT_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be >= 1")
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # as nn.Linear initialises its weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


def add_lora(module: nn.Module, rank: int, alpha: float, targets: Iterable[str] = VIT_TARGETS) -> list[str]:
    """Wrap every ``nn.Linear`` whose name ends with one of ``targets``; returns the wrapped layers' names."""
    targets = tuple(targets)
    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear) and n.endswith(targets)]
    if not names:
        raise ValueError(f"no linear layer of {type(module).__name__} ends with any of {targets}")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, LoRALinear(getattr(parent, child), rank, alpha))
    return names


def delta_state(module: nn.Module, full: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """The trained delta: each LoRALinear's A and B under its layer's name (as the merged model names it), and the
    whole tensors named in ``full``."""
    out: dict[str, torch.Tensor] = {}
    for name, m in module.named_modules():
        if isinstance(m, LoRALinear):
            out[f"{name}.lora_a"] = m.lora_a.detach()
            out[f"{name}.lora_b"] = m.lora_b.detach()
    params = dict(module.named_parameters())
    for key in full:
        out[key] = params[key].detach()
    return out


@torch.no_grad()
def merge_delta(module: nn.Module, delta: Mapping[str, torch.Tensor], scale: float) -> None:
    """Fold a delta into a plain (unwrapped) base module in place: W += scale * B A; whole tensors replace theirs.
    Every key must name a tensor of the module with the right shape, or nothing is changed."""
    state = module.state_dict()
    updates: dict[str, torch.Tensor] = {}
    for key, value in delta.items():
        if key.endswith(".lora_b"):
            if key[: -len("b")] + "a" not in delta:
                raise WeightsError(f"LoRA delta has {key!r} but no matching lora_a")
            continue
        if key.endswith(".lora_a"):
            layer = key[: -len(".lora_a")]
            b = delta.get(f"{layer}.lora_b")
            weight = state.get(f"{layer}.weight")
            if b is None or weight is None:
                raise WeightsError(f"LoRA delta for {layer!r} does not fit the model (missing B or layer)")
            step = b.float() @ value.float()
            if step.shape != weight.shape:
                raise WeightsError(f"LoRA delta for {layer!r} is {tuple(step.shape)}, "
                                   f"the layer is {tuple(weight.shape)}")
            updates[f"{layer}.weight"] = weight.float() + scale * step
        else:
            if key not in state or state[key].shape != value.shape:
                raise WeightsError(f"delta tensor {key!r} {tuple(value.shape)} does not fit the model")
            updates[key] = value.float()
    if not updates:
        raise WeightsError("the LoRA delta is empty")
    for key, value in updates.items():
        state[key].copy_(value.to(state[key].dtype))


def save_delta(delta: Mapping[str, torch.Tensor], folder: Path) -> str:
    """Write lora.safetensors (fp16) into ``folder``; returns its sha256."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DELTA_FILE
    save_file({k: v.detach().cpu().half().contiguous() for k, v in delta.items()}, str(path))
    path.chmod(0o644)  # a file to commit, not a private one
    return W.sha256_file(path)


def load_delta(folder: Path, config: Mapping) -> tuple[dict[str, torch.Tensor], float]:
    """(delta, scale) of a shipped LoRA model, its checksum verified."""
    path = folder / DELTA_FILE
    if not path.is_file():
        raise WeightsError(f"LoRA weights {path} are missing")
    try:
        rank, alpha = int(config["lora"]["rank"]), float(config["lora"]["alpha"])
        expected = str(config["sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{folder / 'config.json'} needs lora.rank, lora.alpha and sha256 ({exc!r})") from exc
    W.verify_sha256(path, expected, what=f"LoRA weights of {folder.name}")
    delta = dict(W.load_state_dict_file(path))
    ranks = {v.shape[0] for k, v in delta.items() if k.endswith(".lora_a")}
    if ranks != {rank}:
        raise WeightsError(f"{path} holds LoRA ranks {sorted(ranks)}, its config says {rank}")
    return delta, alpha / rank
