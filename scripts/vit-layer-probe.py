"""How good is each depth of the frozen ViT for breed retrieval? (docs/embedder-eval.md, "every depth probed")

Leave-one-out breed recall@1 and mAP on Imagewoof dev for the CLS token and the mean patch token after blocks
4-12 (each through the final LayerNorm), preprocessed exactly as the embedder does.

    .venv/bin/python scripts/vit-layer-probe.py [../shared/data/imagewoof/dev]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dogsearch.eval.retrieval import retrieval_metrics
from dogsearch.models.dinov2 import VIT_MODEL
from dogsearch.models.registry import create_model

BLOCKS = (4, 6, 8, 9, 10, 11, 12)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/imagewoof/dev")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    labels = [p.parent.name for p in paths]
    model = create_model(VIT_MODEL)
    vit = model.module
    first_patch = 1 + getattr(vit, "num_reg_tokens", 0)
    feats: dict[str, list[np.ndarray]] = {f"{kind} {b}": [] for b in BLOCKS for kind in ("cls", "patch mean")}
    with torch.inference_mode():
        for i in tqdm(range(0, len(paths), 25), desc="vit layers", unit="batch"):
            x = torch.stack([model.preprocess(Image.open(p).convert("RGB")) for p in paths[i:i + 25]])
            h = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
            for depth, block in enumerate(vit.blocks, 1):
                h = block(h)
                if depth in BLOCKS:
                    out = vit.norm(h)
                    feats[f"cls {depth}"].append(out[:, 0].numpy())
                    feats[f"patch mean {depth}"].append(out[:, first_patch:].mean(1).numpy())
    for name, chunks in feats.items():
        e = np.concatenate(chunks)
        metrics = retrieval_metrics(e / np.linalg.norm(e, axis=1, keepdims=True), labels)
        print(f"{name:>14}: R@1 {metrics['recall@1']:.3f}  mAP {metrics['map']:.3f}")


if __name__ == "__main__":
    main()
