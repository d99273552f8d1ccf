"""A fused embedding: the fine-tuned ViT's vector next to what EfficientNet-Lite0 knows of ImageNet's 118 breeds.

The LoRA ViT was tuned on ten breeds and on dog faces and lost some of the breeds it never saw; the ImageNet CNN
knows them (and the embedder runs it on every dog crop anyway, for breed suggestions). A fusion model is a folder
``models/<model-id>/`` whose ``config.json`` has ``"kind": "fusion"``, ``"base"`` (the ViT model, built through
the registry) and ``"fusion"``: the weight of each part, every part L2-normalised first:

* ``vit``: the base's vector;
* ``cnn``: the CNN's pooled 1280-d features;
* ``breeds``: the square roots of the CNN's breed probabilities (its 119 breed classes, renormalised as the breed
  suggestions are): a unit vector whose cosine with another's is the Bhattacharyya coefficient of the two
  breed distributions;
* optional ``projection`` (a file ``projection.safetensors``, sha256 in the config): a linear map of the
  concatenation to a smaller vector.

The served vector is ``EmbeddingModel``'s L2-normalisation of that. Both networks see the same crop: their timm
eval transforms differ only in mean and std, which the module converts between.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dogsearch.models import weights as W
from dogsearch.models.weights import WeightsError

PROJECTION_FILE = "projection.safetensors"
PARTS = ("vit", "cnn", "breeds")
CNN_DIMS = {"cnn": 1280, "breeds": 119}


def breed_root_probs(logits: torch.Tensor) -> torch.Tensor:
    """ImageNet logits -> square roots of the breed probabilities (unit rows)."""
    from dogsearch.models.dogclass import BREED_CLASSES

    p = torch.softmax(logits.float(), dim=1)[:, list(BREED_CLASSES)]
    return (p / p.sum(dim=1, keepdim=True).clamp_min(1e-12)).sqrt()


def combine(vit: torch.Tensor, pooled: torch.Tensor | None, logits: torch.Tensor | None, weights: dict[str, float],
            projection: nn.Linear | None = None) -> torch.Tensor:
    """The fused vector (not yet normalised) from the parts: the model's forward and the trainer both use this."""
    out = [weights.get("vit", 1.0) * F.normalize(vit.float(), dim=1)]
    if weights.get("cnn"):
        out.append(weights["cnn"] * F.normalize(pooled.float(), dim=1))
    if weights.get("breeds"):
        out.append(weights["breeds"] * breed_root_probs(logits))
    z = torch.cat(out, dim=1)
    return projection(z) if projection is not None else z


def fused_dim(weights: dict[str, float]) -> int:
    return sum(CNN_DIMS[p] for p in CNN_DIMS if weights.get(p))


def check_vit_part(config: dict) -> None:
    """ValueError unless the model of this config has its base's vector as a part (an unprojected fusion)."""
    if config.get("kind") != "fusion" or config["fusion"].get("projection"):
        raise ValueError(f"{config.get('model_id')}: only an unprojected fusion has its base's vector as a part")


def vit_part(config: dict, dim: int) -> dict:
    """Where the base ViT's vector lies in a fusion's ``dim``-d served vectors: ``{"dims", "scale"}`` (the part is
    the first dims components; every part is a unit vector weighed before the whole is normalised, so the ViT's
    has the length weight / sqrt(sum of weights squared), and ``scale`` is its inverse), with the fusion's
    ``rerank`` where it has one (core/judged.py). A projected fusion mixes the parts: it has none."""
    check_vit_part(config)
    weights = {k: float(v) for k, v in config["fusion"]["weights"].items()}
    a = weights.get("vit", 1.0)
    total = (a ** 2 + sum(weights.get(p, 0.0) ** 2 for p in CNN_DIMS)) ** 0.5
    part = {"dims": dim - fused_dim(weights), "scale": round(total / a, 8)}
    rerank = config["fusion"].get("rerank")  # chosen with the weights (training/fusion), read by the gallery
    return part if rerank is None else {**part, "rerank": dict(rerank)}


class FusedBackbone(nn.Module):
    """ViT (its input) + the CNN on the same pixels -> the fused vector. ``num_features`` is its size."""

    def __init__(self, vit: nn.Module, cnn: nn.Module, *, vit_norm: tuple, cnn_norm: tuple, weights: dict[str, float],
                 projection: nn.Linear | None = None) -> None:
        super().__init__()
        unknown = set(weights) - set(PARTS)
        if unknown or weights.get("vit", 1.0) <= 0:
            raise ValueError(f"fusion weights need a positive 'vit' and only {PARTS}: {weights}")
        self.vit, self.cnn, self.projection, self.weights = vit, cnn, projection, dict(weights)
        # x_cnn = (x * vit_std + vit_mean - cnn_mean) / cnn_std = x * scale + shift
        (vm, vs), (cm, cs) = ((torch.as_tensor(a, dtype=torch.float32).reshape(1, 3, 1, 1) for a in n)
                              for n in (vit_norm, cnn_norm))
        self.register_buffer("scale", vs / cs, persistent=False)
        self.register_buffer("shift", (vm - cm) / cs, persistent=False)
        self.needs_cnn = bool(weights.get("cnn") or weights.get("breeds"))
        vit_dim = int(vit.num_features)
        self.num_features = projection.out_features if projection is not None else vit_dim + fused_dim(weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.vit(x)
        pooled = logits = None
        if self.needs_cnn:
            pooled = self.cnn.forward_head(self.cnn.forward_features(x * self.scale + self.shift), pre_logits=True)
            logits = self.cnn.get_classifier()(pooled)
        return combine(vit, pooled, logits, self.weights, self.projection)


def load_projection(folder: Path, config: dict, in_dim: int) -> nn.Linear | None:
    spec = config["fusion"].get("projection")
    if not spec:
        return None
    path = folder / PROJECTION_FILE
    if not path.is_file():
        raise WeightsError(f"projection weights {path} are missing")
    W.verify_sha256(path, spec["sha256"], what=f"projection of {folder.name}")
    state = {k: v.float() for k, v in W.load_state_dict_file(path).items()}
    layer = nn.Linear(in_dim, int(spec["out_dim"]), bias=False)
    try:
        layer.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path} does not fit a {in_dim} -> {spec['out_dim']} projection: {exc}") from exc
    return layer


def build_fused(folder: Path, config: dict, vit: nn.Module, vit_config: dict, cache_dir) -> nn.Module:
    """The fusion model of ``folder`` on the built ViT ``vit`` (preprocessed as ``vit_config``)."""
    from dogsearch.models.efficientnet import LITE0_MODEL, PACKAGE_MODEL_ID
    from dogsearch.models.registry import build_backbone

    weights = {k: float(v) for k, v in config["fusion"]["weights"].items()}
    cnn, cnn_id, cnn_config = build_backbone(LITE0_MODEL, num_classes=1000, cache_dir=cache_dir)
    if cnn_id != config["fusion"].get("cnn_model_id", PACKAGE_MODEL_ID):
        raise WeightsError(f"{folder.name} was made with the CNN {config['fusion']['cnn_model_id']}, not {cnn_id}")
    crop = {k: v for k, v in vit_config.items() if k not in ("mean", "std")}
    if crop != {k: v for k, v in cnn_config.items() if k not in ("mean", "std")}:
        raise WeightsError(f"{folder.name}: the ViT and the CNN crop differently ({vit_config} vs {cnn_config})")
    in_dim = int(vit.num_features) + fused_dim(weights)
    return FusedBackbone(vit, cnn, vit_norm=(vit_config["mean"], vit_config["std"]),
                         cnn_norm=(cnn_config["mean"], cnn_config["std"]), weights=weights,
                         projection=load_projection(folder, config, in_dim)).eval()


def save_projection(layer: nn.Linear, folder: Path) -> dict:
    """Write projection.safetensors (fp16); returns the config's ``projection`` entry."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROJECTION_FILE
    save_file({"weight": layer.weight.detach().cpu().half().contiguous()}, str(path))
    path.chmod(0o644)
    return {"out_dim": layer.out_features, "sha256": W.sha256_file(path)}
