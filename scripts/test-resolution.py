"""The default fusion's networks at other input sizes (docs/embedder-eval.md, "Test-time resolution"): the ViT and
the CNN each embed the same crop of the photo (timm's eval transform, crop_pct 0.875) at more pixels, and the
fusion's weights and re-ranking are chosen again on the validation sets for each, as `dogsearch train fusion`
chooses them.

    dogsearch train fusion --model-id vit_small_dinov2-lora-dogs-v3-lite0-breeds \\
        --base vit_small_dinov2-lora-dogs-v3 --cache-dir /tmp/fusion-cache --rerank-weights 0.75 --rerank-caps 0.4 \\
        --dry-run                                                     # the 224-px parts of every set (~15 min)
    python scripts/test-resolution.py --parts /tmp/fusion-cache/vit_small_dinov2-lora-dogs-v3 --out /tmp/res \\
        --vit-sizes 252,280 --cnn-sizes 256,288                       # ~35 min on 2 cores, then seconds a variant

Why it could help: both networks were trained on random resized crops, in which a dog fills more of the frame than
in the centre crop they are tested on, so at test time a dog looks smaller than in training; a larger input gives it
back its training size (Touvron et al., "Fixing the train-test resolution discrepancy", 2019), and DINOv2 itself
was last pretrained at 518 px. The ViT's position embedding is resampled to the larger grid
(``dinov2.with_input_size``), the CNN is convolutional. Variants: each size alone, and for the ViT each size's vector
averaged with the 224-px one (two scales). ``--cnn-upsampled`` also feeds the CNN the 224-px crop resized to its
size (what a served fusion would do to keep one decode); it never beat the photo's own crop.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from functools import cache, partial
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.training.fusion import train as FT  # noqa: E402
from dogsearch.training.fusion.cli import BREED_GRID, DATA, REPORT_SETS, WHOLE_OF  # noqa: E402

BASE = "vit_small_dinov2-lora-dogs-v3"
RERANK_WEIGHTS, RERANK_CAPS = (0.3, 0.4, 0.5, 0.6, 0.75), (0.2, 0.3, 0.4, 0.5)  # the shipped fusion's grid
MAX_DROP = 0.005


def _transform(config: dict, size: int):
    import timm.data

    from dogsearch.models.embedding import split_eval_transform

    return split_eval_transform(timm.data.create_transform(**{**config, "input_size": (3, size, size)},
                                                           is_training=False))


def _batches(paths: list[str], resize, size: int = 32):
    from dogsearch.models.embedding import pixels

    for i in range(0, len(paths), size):
        batch = []
        for path in paths[i:i + size]:
            with Image.open(path) as im:
                batch.append(pixels(resize(im.convert("RGB"))))
        yield torch.stack(batch).float().div_(255)


@cache
def _network(name: str, size: int | None = None):
    """(module, data config) of the registry's ``name``, a ViT resized to ``size`` px."""
    from dogsearch.models.dinov2 import with_input_size
    from dogsearch.models.registry import build_backbone

    module, _, config = build_backbone(name, num_classes=0 if size else 1000)
    return (with_input_size(module, size) if size and size != config["input_size"][-1] else module), config


@torch.inference_mode()
def vit_vectors(paths: list[str], size: int) -> torch.Tensor:
    vit, config = _network(BASE, size)
    resize, mean, std = _transform(config, size)
    return torch.cat([F.normalize(vit((x - mean) / std).float(), dim=1) for x in _batches(paths, resize)])


@torch.inference_mode()
def cnn_logits(paths: list[str], size: int, upsampled: bool) -> torch.Tensor:
    """The CNN's ImageNet logits of the photo's own crop at ``size``, or (``upsampled``) of the 224-px crop resized."""
    from dogsearch.models.efficientnet import LITE0_MODEL

    cnn, config = _network(LITE0_MODEL)
    resize, mean, std = _transform(config, config["input_size"][-1] if upsampled else size)
    out = []
    for x in _batches(paths, resize):
        if upsampled:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        out.append(cnn((x - mean) / std).float())
    return torch.cat(out)


def cached(path: Path, compute) -> torch.Tensor:
    if not path.is_file():
        start = time.time()
        torch.save(compute(), path)
        print(f"{path.name}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)
    return torch.load(path)


def chosen(sets: dict[str, dict]) -> dict:
    """The fusion chosen on validation as `train fusion` chooses it, and every set's figures under it."""
    breeds = [float(b) for b in BREED_GRID.split(",")]
    weights, grid = FT.choose_weights(sets, FT.weight_grid([0.0], breeds), max_drop=MAX_DROP)
    floor = FT.floor_of(grid[0]["val"], MAX_DROP)
    rerank, _ = FT.choose_rerank(sets, weights, FT.rerank_grid(RERANK_WEIGHTS, RERANK_CAPS, 100), floor)
    val = FT.evaluate(sets, weights, None, FT.VAL_SETS, rerank)
    return {"breeds": weights["breeds"], "rerank": None if rerank is None else vars(rerank),
            "val_score": round(FT.val_score(val), 4), "val": val,
            "reported": FT.evaluate(sets, weights, None, REPORT_SETS, rerank),
            "vit_alone": FT.evaluate(sets, {"vit": 1.0}, None, [*FT.VAL_SETS, *REPORT_SETS])}


def base_parts(folder: Path) -> dict[str, dict]:
    """`train fusion`'s cached parts of every whole set that the choice and the report read."""
    wholes = sorted({WHOLE_OF.get(n, n) for n in {*FT.VAL_SETS, *REPORT_SETS}})
    return {name: torch.load(folder / f"{name}.pt", weights_only=False) for name in wholes}


def print_chosen(base: dict[str, dict], variants: dict[str, dict[str, dict[str, torch.Tensor]]]) -> None:
    """For each variant (parts that replace the base's, per set), the fusion chosen on validation: a JSON line."""
    for name, parts in variants.items():
        sets = {n: {**base[n], **parts.get(n, {})} for n in base}
        for part in {*FT.VAL_SETS, *REPORT_SETS} & WHOLE_OF.keys():
            sets[part] = FT.subset(sets[WHOLE_OF[part]], FT.set_items(part, DATA))
        print(json.dumps({"variant": name, **chosen(sets)}), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=Path, required=True, help="`train fusion`'s cache folder of the base")
    parser.add_argument("--out", type=Path, required=True, help="where the other sizes' parts are cached")
    parser.add_argument("--vit-sizes", default="252,280", help="multiples of the 14-px patch")
    parser.add_argument("--cnn-sizes", default="256,288")
    parser.add_argument("--cnn-upsampled", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = base_parts(args.parts)
    wholes = list(base)
    variants: dict[str, dict[str, dict[str, torch.Tensor]]] = {"224": {}}
    for size in [int(s) for s in args.vit_sizes.split(",") if s]:
        vit = {n: cached(args.out / f"{n}-vit{size}.pt", partial(vit_vectors, base[n]["paths"], size))
               for n in wholes}
        variants[f"vit {size}"] = {n: {"vit": vit[n]} for n in wholes}
        variants[f"vit 224+{size}"] = {n: {"vit": F.normalize(base[n]["vit"] + vit[n], dim=1)} for n in wholes}
    for size in [int(s) for s in args.cnn_sizes.split(",") if s]:
        for up in (False, True) if args.cnn_upsampled else (False,):
            kind = "up" if up else "crop"
            logits = {n: cached(args.out / f"{n}-{kind}{size}.pt", partial(cnn_logits, base[n]["paths"], size, up))
                      for n in wholes}
            variants[f"cnn {size}{' upsampled' if up else ''}"] = {n: {"logits": logits[n]} for n in wholes}
    print_chosen(base, variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
