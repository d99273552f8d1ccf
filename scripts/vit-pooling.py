"""The default fusion's ViT part pooled otherwise (docs/embedder-eval.md, "The ViT's patch tokens beside its CLS"):
its class token alone (what ships), the mean of its patch tokens alone, and the two side by side at several weights;
for each, the fusion's breed weight and re-ranking are chosen again on the validation sets, as `dogsearch train
fusion` chooses them (scripts/test-resolution.py's `chosen`).

    dogsearch train fusion --model-id vit_small_dinov2-lora-dogs-v3-lite0-breeds \\
        --base vit_small_dinov2-lora-dogs-v3 --cache-dir /tmp/fusion-cache --rerank-weights 0.75 --rerank-caps 0.4 \\
        --dry-run                                                     # the 224-px parts of every set (~15 min)
    python scripts/vit-pooling.py --parts /tmp/fusion-cache/vit_small_dinov2-lora-dogs-v3 --out /tmp/pool

Why it could help: the fine-tune's losses shaped the class token on ten breeds and on DogFaceNet's faces; the patch
tokens were shaped only through it, so their mean may keep more of what tells breeds it never saw apart (DINOv2's
own retrieval features put the two side by side).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("test_resolution", ROOT / "scripts" / "test-resolution.py")
RES = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RES)

# The patch mean's weight beside the class token (both unit vectors), summed: one 384-d vector in the stream's own
# space, a weighted pooling of the tokens, so the fusion's parts and re-ranking stay as they are.
WEIGHTS = (0.25, 0.5, 1.0)


@torch.inference_mode()
def tokens(paths: list[str]) -> dict[str, torch.Tensor]:
    """Each photo's class token and patch-token mean after the final LayerNorm, both L2-normalised."""
    vit, config = RES._network(RES.BASE, 224)  # a size: its pooled features (224 px, as shipped: no resampling)
    resize, mean, std = RES._transform(config, config["input_size"][-1])
    cls, patches = [], []
    for x in RES._batches(paths, resize):
        out = vit.forward_features((x - mean) / std).float()
        cls.append(F.normalize(out[:, 0], dim=1))
        patches.append(F.normalize(out[:, vit.num_prefix_tokens:].mean(dim=1), dim=1))
    return {"cls": torch.cat(cls), "mean": torch.cat(patches)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=Path, required=True, help="`train fusion`'s cache folder of the base")
    parser.add_argument("--out", type=Path, required=True, help="where the tokens are cached")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    base = RES.base_parts(args.parts)
    wholes = list(base)
    toks = {n: RES.cached(args.out / f"{n}-tokens.pt", partial(tokens, base[n]["paths"])) for n in wholes}
    for n in wholes:  # the class token is the shipped vector: the same pixels, the same model
        drift = (toks[n]["cls"] - base[n]["vit"]).abs().max().item()
        assert drift < 1e-3, f"{n}: the class token is {drift} off the cached vector"
    variants = {"cls (shipped)": {n: {"vit": toks[n]["cls"]} for n in wholes},
                "patch mean": {n: {"vit": toks[n]["mean"]} for n in wholes}}
    for w in WEIGHTS:
        variants[f"cls + {w} mean"] = {n: {"vit": F.normalize(toks[n]["cls"] + w * toks[n]["mean"], dim=1)}
                                       for n in wholes}
    RES.print_chosen(base, variants)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
