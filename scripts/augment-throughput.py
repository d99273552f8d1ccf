"""Views a second for `dogsearch train vit`, by the two ways it can make them (docs/embedder-eval.md, "Views made on
the training device"): `--augment pil` (each photo decoded and augmented by PIL for every view, in the loader's
processes: this measures one process) and `--augment device` (each photo decoded once, `augment.device_views` on
the batch: on the CPU here, on a GPU with --device cuda). The breed batch's settings; Imagewoof train photos.

    python scripts/augment-throughput.py [--photos 256] [--device cpu|cuda] [--side 320]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.models import dinov2 as V  # noqa: E402
from dogsearch.training.embedder.augment import TwoViews, device_views, image_augment  # noqa: E402
from dogsearch.training.embedder.config import FinetuneConfig  # noqa: E402
from dogsearch.training.embedder.finetune import Photos, decode_all, labelled  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--side", type=int, default=FinetuneConfig.augment_side)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    c = FinetuneConfig()
    settings = dict(min_scale=c.breed_min_scale, jitter=c.jitter, grey_p=0.1, blur_p=0.2)
    mean, std = V.DATA_CONFIG["mean"], V.DATA_CONFIG["std"]
    items, _ = labelled(ROOT.parent / "shared/data/imagewoof/train", "breed", "train", args.photos)
    photos = Photos(items, image_augment(V.IMG_SIZE, mean, std, **settings))
    assert isinstance(photos.views, TwoViews)
    start = time.perf_counter()
    for i in range(len(photos)):
        photos[i]
    pil = 2 * len(photos) / (time.perf_counter() - start)
    start = time.perf_counter()
    squares, sizes = decode_all(items, args.side, 0)
    decode = len(items) / (time.perf_counter() - start)
    squares = squares.to(args.device)
    generator = torch.Generator(device=args.device).manual_seed(0)
    for _ in range(2):  # the first round warms up (kernels, allocations); the second is timed
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(items), args.batch):
            for _ in range(2):
                device_views(squares[i:i + args.batch], sizes[i:i + args.batch], V.IMG_SIZE, mean, std,
                             generator=generator, **settings)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        device = 2 * len(items) / (time.perf_counter() - start)
    print(json.dumps({"photos": len(items), "device": args.device, "threads": torch.get_num_threads(),
                      "pil_views_per_s_one_process": round(pil, 1), "decode_once_photos_per_s": round(decode, 1),
                      "device_views_per_s": round(device, 1), "device_over_pil": round(device / pil, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
