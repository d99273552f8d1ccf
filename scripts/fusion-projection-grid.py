"""The projected fusion's grid (models/vit_small_dinov2-lora-dogs-v1-lite0-bodies/MODEL_CARD.md): every CNN weight,
breed weight and distillation weight, each projection trained and its epoch kept by ``train_projection``'s rule,
chosen by the mean validation mAP. Reads the parts ``dogsearch train fusion --out-dim N`` cached (run it once first
with the same --cache-dir and training sizes); prints one JSON row a setting, with the held-out figures beside
(reported, never chosen by), and the chosen setting last.

    python scripts/fusion-projection-grid.py --cache-dir .cache/fusion
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dogsearch.training.fusion import train as T  # noqa: E402
from dogsearch.training.fusion.cli import PARTS_OF  # noqa: E402

HELD_OUT = ("body_heldout", "dfn_heldout", "oxford_heldout", "iw_dev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/fusion"))
    parser.add_argument("--vit-id", default="vit_small_dinov2-lora-dogs-v1", help="the cached ViT's folder")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--train-files", default="iw_train-100.pt,dfn_train-100.pt")
    parser.add_argument("--cnn-weights", default="0.25,0.5,1")
    parser.add_argument("--breed-weights", default="0,0.2")
    parser.add_argument("--w-distill", default="1,3,10")
    parser.add_argument("--out-dim", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-drop", type=float, default=0.005)
    args = parser.parse_args()
    folder = args.cache_dir / args.vit_id
    sets = {name: torch.load(folder / f"{name}.pt", weights_only=False)
            for name in ("oxford", "iw_val", "dfn_val", "iw_dev", "dfn_heldout", "body")}
    for name, file in zip(("iw_train", "dfn_train"), args.train_files.split(","), strict=True):
        sets[name] = torch.load(folder / file, weights_only=False)
    for whole, parts in PARTS_OF.items():
        for part in parts:
            sets[part] = T.subset(sets[whole], T.set_items(part, args.data))
    floor = T.floor_of(T.evaluate(sets, {"vit": 1.0}, None, T.VAL_SETS), args.max_drop)
    floats = lambda text: [float(x) for x in text.split(",")]  # noqa: E731
    rows = []
    for c, b, wd in itertools.product(floats(args.cnn_weights), floats(args.breed_weights), floats(args.w_distill)):
        weights = {"vit": 1.0, "cnn": c, "breeds": b}
        layer, history = T.train_projection({n: sets[n] for n in T.TRAIN_SETS}, weights, args.out_dim,
                                            epochs=args.epochs, sets=sets, w_distill=wd, floor=floor)
        row: dict = {"cnn": c, "breeds": b, "w_distill": wd}
        if layer is not None:
            kept = max((h for h in history if h["within_max_drop"]), key=lambda h: h["val_score"])
            row |= {"epoch": kept["epoch"], "val_score": kept["val_score"], "val": kept["val"],
                    "held_out": T.evaluate(sets, weights, layer, HELD_OUT)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"chosen": max((r for r in rows if "val_score" in r), key=lambda r: r["val_score"])}))


if __name__ == "__main__":
    main()
