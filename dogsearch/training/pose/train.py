"""Train the default pose model (`dogsearch train pose`): seeded, CPU-friendly, writes the shippable files."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from dogsearch.models.pose import crop as C
from dogsearch.models.pose import net as N
from dogsearch.pose.metrics import PckCounter
from dogsearch.training.pose import data as D

MAX_FILE_BYTES = 5 * 1024 * 1024


def train(labels_dir: Path, image_dirs: list[Path], out_dir: Path, *, epochs: int = 40, batch_size: int = 16,
          lr: float = 1e-3, trunk_lr_scale: float = 0.3, input_size: int = 160, seed: int = 0,
          threads: int | None = None, name: str = "pose-lite0-fpn", detector_share: float = 0.5,
          detector_size: int = 168) -> dict:
    D.worker_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    items = D.find_items(labels_dir, image_dirs)
    train_items, heldout_items = D.split_items(items, "train"), D.split_items(items, "heldout")
    detected = D.detector_boxes(train_items, input_size=detector_size, threads=threads) if detector_share else None
    train_set = D.PoseDataset(train_items, input_size=input_size, augment=True, seed=seed, detected=detected,
                              detected_share=detector_share)
    gen = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=gen, num_workers=0)

    model = N.PoseNet()
    for p in model.frozen_parameters():
        p.requires_grad_(False)
    trunk_params = [p for i in N.TRAINED_BLOCKS for p in model.blocks[i].parameters()]
    optimizer = torch.optim.AdamW([
        {"params": model.head.parameters(), "lr": lr},
        {"params": trunk_params, "lr": lr * trunk_lr_scale},
    ], weight_decay=1e-4)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    total = epochs * len(loader)
    warmup = min(200, total // 10)
    step = 0
    start = time.time()
    bar = tqdm(total=total, desc="train pose", unit="batch")
    for epoch in range(epochs):
        model.set_trunk_train_mode()
        running = 0.0
        for x, target, weight in loader:
            scale = D.cosine_lr(step, total, warmup)
            for group, base in zip(optimizer.param_groups, base_lrs, strict=True):
                group["lr"] = base * scale
            pred = model(x)
            loss = N.heatmap_loss(pred, target, weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running += float(loss)
            step += 1
            bar.update(1)
        bar.set_postfix(epoch=epoch + 1, loss=round(running / max(1, len(loader)), 4))
        if epoch + 1 < epochs:  # a usable snapshot after every epoch, marked as partial
            model.eval()
            save_model(model, out_dir, {"name": name, "input_size": input_size,
                                        "heatmap_stride": N.HEATMAP_STRIDE, "keypoints": list(N.K.MODEL_NAMES),
                                        "partial": f"epoch {epoch + 1} of {epochs}"})
    bar.close()
    minutes = (time.time() - start) / 60

    model.eval()
    pck = evaluate_with_label_boxes(model, heldout_items, input_size)
    meta = {
        "name": name, "input_size": input_size, "heatmap_stride": N.HEATMAP_STRIDE,
        "keypoints": list(N.K.MODEL_NAMES), "trained_blocks": list(N.TRAINED_BLOCKS),
        "recipe": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "trunk_lr_scale": trunk_lr_scale,
                   "seed": seed, "heldout_percent": D.HELDOUT_PERCENT, "optimizer": "AdamW wd 1e-4, cosine",
                   "sigma": 2.0, "loss": "spatial-softmax cross-entropy",
                   "detector_boxes": {"share": detector_share, "detector_size": detector_size,
                                      "train_dogs_with_box": len(detected or {})}},
        "data": {"train_images": len(train_items), "train_dogs": len(train_set),
                 "heldout_images": len(heldout_items)},
        "train_minutes": round(minutes, 1),
        "heldout_label_boxes": pck,
    }
    save_model(model, out_dir, meta)
    return meta


def evaluate_with_label_boxes(model: N.PoseNet, items, input_size: int) -> dict:
    """PCK@0.1 on held-out photos, top-down from the labelled boxes (the detector is measured by `eval pose`)."""
    data = D.PoseDataset(items, input_size=input_size, augment=False)
    counter = PckCounter(alpha=0.1)
    with torch.inference_mode():
        for path, dog, _ in data.samples:
            m = C.box_affine(dog.box, input_size)
            x = N.to_input([C.warp(data._image(path), m, input_size)])
            coords, _ = N.decode_heatmaps(model(x))
            pred = C.apply(C.invert(m), coords[0].numpy())
            counter.add(pred, dog.points, dog.visible, dog.box)
    return {"pck@0.1": counter.pck, "per_joint": counter.per_joint(), "n_dogs": len(data.samples)}


def save_model(model: N.PoseNet, out_dir: Path, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    trunk, head = model.trained_state()
    files = {}
    for fname, state in (("trunk.safetensors", trunk), ("head.safetensors", head)):
        path = out_dir / fname
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}, str(path))
        path.chmod(0o644)  # safetensors writes 0600
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise RuntimeError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit for the repository")
        from dogsearch.models.weights import sha256_file

        files[fname] = sha256_file(path)
    meta = dict(meta, files=files)
    (out_dir / "config.json").write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))
