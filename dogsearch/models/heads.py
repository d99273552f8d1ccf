"""Trained heads on frozen backbones: the small deltas that ship under models/<model-id>/.

A head model is a folder ``models/<model-id>/`` holding ``config.json`` (base model name, head shape,
the head file's sha256) and ``head.safetensors`` (fp16). ``create_model("<model-id>")`` builds the base
model from its registry weights and puts the head on top; the head's input is the base model's
L2-normalised embedding, exactly what the base model serves.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dogsearch.core.paths import MODELS_DIR
from dogsearch.models import weights as W
from dogsearch.models.weights import WeightsError

HEAD_FILE = "head.safetensors"
CONFIG_FILE = "config.json"


class EmbeddingHead(nn.Module):
    """Residual MLP: x + up(gelu(down(x))) then a linear map to ``out_dim``. Starting near the identity
    (``up`` is zero-initialised) keeps the base model's neighbours while training only moves them."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.out_dim = in_dim, hidden, out_dim
        self.down = nn.Linear(in_dim, hidden)
        self.up = nn.Linear(hidden, in_dim)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def config(self) -> dict:
        return {"in_dim": self.in_dim, "hidden": self.hidden, "out_dim": self.out_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.up(self.drop(F.gelu(self.down(x))))
        return self.out(x)


class HeadedBackbone(nn.Module):
    """backbone -> L2 normalise -> head; ``num_features`` is the head's output size."""

    def __init__(self, backbone: nn.Module, head: EmbeddingHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_features = head.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.backbone(x).flatten(1).float(), dim=1))


def find(name: str, models_dir: Path | None = None) -> Path | None:
    """The folder of head model ``name``, or None when there is none."""
    if "/" in name or name.startswith("."):
        return None
    folder = (models_dir or MODELS_DIR) / name
    return folder if (folder / CONFIG_FILE).is_file() else None


def read_config(folder: Path) -> dict:
    """A trained model's config: ``kind`` "head" (the default: a head on the base's embedding), "lora" (a
    low-rank delta merged into the base's weights, dogsearch/models/lora.py), "fusion" (the base next to the
    ImageNet CNN's parts, dogsearch/models/fusion.py), "input-size" (a ViT base run on smaller inputs: fewer
    patches, dogsearch/models/dinov2.py ``with_input_size``) or "tome" (a ViT base that merges r tokens a block,
    dogsearch/models/tome.py)."""
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
        if not isinstance(config, dict):
            raise TypeError("not a JSON object")
        kind = config.setdefault("kind", "head")
        if kind not in ("head", "lora", "fusion", "input-size", "tome"):
            raise ValueError(f"unknown kind {kind!r}")
        config["base"], config[kind]  # noqa: B018 - the base and the delta's shape must be there
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"{folder / CONFIG_FILE} is not a trained model's config ({exc})") from exc
    return config


def load_head(folder: Path) -> EmbeddingHead:
    config = read_config(folder)
    path = folder / HEAD_FILE
    if not path.is_file():
        raise WeightsError(f"head weights {path} are missing")
    if config.get("sha256"):
        W.verify_sha256(path, config["sha256"], what=f"head weights of {folder.name}")
    head = EmbeddingHead(**config["head"])
    state = {k: v.float() for k, v in W.load_state_dict_file(path).items()}
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit the head in {CONFIG_FILE}: {exc}") from exc
    return head.eval()


def save_head(head: EmbeddingHead, folder: Path, config: dict) -> dict:
    """Write head.safetensors (fp16) and config.json (with the file's sha256); returns the config."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / HEAD_FILE
    save_file({k: v.detach().cpu().half().contiguous() for k, v in head.state_dict().items()}, str(path))
    path.chmod(0o644)  # a file to commit, not a private one
    config = dict(config, head=head.config(), sha256=W.sha256_file(path))
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return config
