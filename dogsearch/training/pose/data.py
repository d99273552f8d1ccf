"""The dog keypoint labels as training samples: a deterministic held-out split, augmentation, heatmap targets."""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance

from dogsearch.models.pose import crop as C
from dogsearch.models.pose import keypoints as K
from dogsearch.pose.labels import DogLabel, parse_label_file

HELDOUT_PERCENT = 20


def is_heldout(image_id: str) -> bool:
    """Deterministic split by the id's hash: the same photos are held out on every machine and run."""
    return int(hashlib.sha1(image_id.encode()).hexdigest()[:8], 16) % 100 < HELDOUT_PERCENT


@dataclass(frozen=True)
class Item:
    image_id: str
    image_path: Path
    label_path: Path


def find_items(labels_dir: Path, image_dirs: list[Path]) -> list[Item]:
    """Pair labels/<id>.txt with <id>.jpg found under any of `image_dirs` (searched recursively)."""
    images: dict[str, Path] = {}
    for root in image_dirs:
        for path in sorted(Path(root).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                images.setdefault(path.stem, path)
    items, missing = [], []
    for label in sorted(Path(labels_dir).glob("*.txt")):
        if label.stem in images:
            items.append(Item(label.stem, images[label.stem], label))
        else:
            missing.append(label.stem)
    if missing:
        raise FileNotFoundError(f"{len(missing)} labels have no image under {', '.join(map(str, image_dirs))}: "
                                f"{', '.join(missing[:5])}")
    return items


def split_items(items: list[Item], part: str) -> list[Item]:
    if part == "all":
        return list(items)
    keep_heldout = part == "heldout"
    return [it for it in items if is_heldout(it.image_id) == keep_heldout]


def gaussian_targets(points: np.ndarray, weight: np.ndarray, size: int, stride: int, sigma: float):
    """(J, 2) input-pixel points -> (J, H, W) Gaussian heatmaps and (J,) weights (0 where the point is off-map)."""
    hm = size // stride
    grid = np.arange(hm, dtype=np.float32) + 0.5
    target = np.zeros((len(points), hm, hm), dtype=np.float32)
    w = weight.copy()
    for j, (x, y) in enumerate(points / stride):
        if w[j] <= 0:
            continue
        if not (0 <= x < hm and 0 <= y < hm):
            w[j] = 0.0
            continue
        gx = np.exp(-((grid - x) ** 2) / (2 * sigma**2))
        gy = np.exp(-((grid - y) ** 2) / (2 * sigma**2))
        target[j] = gy[:, None] * gx[None, :]
    return target, w


def detector_boxes(items: list[Item], *, input_size: int, threads: int | None = None,
                   min_iou: float = 0.3) -> dict[tuple[str, int], np.ndarray]:
    """The service's saliency box for each labelled dog (the one overlapping it most), keyed (image id, dog index).

    Dogs whose best box overlaps them by less than `min_iou` get none: such a crop mostly shows something else.
    """
    from dogsearch.core.boxes import iou
    from dogsearch.models.detect import SaliencyDetector

    detector = SaliencyDetector(threads=threads, input_size=input_size)
    boxes = {}
    for item in items:
        with Image.open(item.image_path) as im:
            image = im.convert("RGB")
        found = [d.box for d in detector.detect(image)]
        for i, dog in enumerate(parse_label_file(item.label_path, image.width, image.height)):
            best = max(found, key=lambda b, d=dog: iou(b, d.box), default=None)
            if best is not None and iou(best, dog.box) >= min_iou:
                boxes[(item.image_id, i)] = np.asarray(best, dtype=np.float64)
    return boxes


class PoseDataset(torch.utils.data.Dataset):
    def __init__(self, items: list[Item], *, input_size: int = 160, stride: int = 4, sigma: float = 2.0,
                 augment: bool = False, seed: int = 0, detected: dict[tuple[str, int], np.ndarray] | None = None,
                 detected_share: float = 0.0) -> None:
        """`detected` (from `detector_boxes`): with `augment`, a `detected_share` of the samples that have one are
        cropped from the detector's box instead of the jittered labelled box, as the service crops them."""
        self.input_size, self.stride, self.sigma, self.augment = input_size, stride, sigma, augment
        self.rng = random.Random(seed)
        self.samples: list[tuple[Path, DogLabel, np.ndarray | None]] = []
        for item in items:
            with Image.open(item.image_path) as im:
                width, height = im.size
            for i, dog in enumerate(parse_label_file(item.label_path, width, height)):
                self.samples.append((item.image_path, dog, (detected or {}).get((item.image_id, i))))
        self.detected_share = detected_share
        self.flip_perm = K.flip_permutation()
        self._cache: dict[Path, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, path: Path) -> Image.Image:
        if path not in self._cache:  # the photos are small (shorter side 160 px): keep them decoded
            with Image.open(path) as im:
                self._cache[path] = im.convert("RGB")
        return self._cache[path]

    def __getitem__(self, index: int):
        path, dog, detected = self.samples[index]
        image = self._image(path)
        box, scale, rotation, shift, flip = dog.box, 1.0, 0.0, (0.0, 0.0), False
        if self.augment:
            r = self.rng
            scale = r.uniform(0.75, 1.3)
            rotation = max(-40.0, min(40.0, r.gauss(0, 20))) if r.random() < 0.6 else 0.0
            shift = (r.uniform(-0.08, 0.08), r.uniform(-0.08, 0.08))
            flip = r.random() < 0.5
            if detected is not None and r.random() < self.detected_share:
                box, scale, shift = detected, 1.0, (0.0, 0.0)  # the detector's own error is the jitter
        m = C.box_affine(box, self.input_size, scale=scale, rotation_deg=rotation, shift=shift, flip=flip)
        crop = C.warp(image, m, self.input_size)
        points = C.apply(m, dog.points)
        weight = dog.weight.copy()
        if flip:
            points, weight = points[self.flip_perm], weight[self.flip_perm]
        if self.augment:
            r = self.rng
            crop = ImageEnhance.Brightness(crop).enhance(r.uniform(0.7, 1.3))
            crop = ImageEnhance.Contrast(crop).enhance(r.uniform(0.7, 1.3))
            crop = ImageEnhance.Color(crop).enhance(r.uniform(0.6, 1.4))
        target, weight = gaussian_targets(points, weight, self.input_size, self.stride, self.sigma)
        x = torch.from_numpy((np.asarray(crop, dtype=np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)
        return x, torch.from_numpy(target), torch.from_numpy(weight)


def worker_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def export_split(items: list[Item], out_dir: Path) -> int:
    """Write `items` as DIR/images/<id>.jpg + DIR/labels/<id>.txt (symlinks), the layout `eval pose` reads."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    for item in items:
        for link, target in ((out_dir / "images" / f"{item.image_id}{item.image_path.suffix.lower()}",
                              item.image_path), (out_dir / "labels" / f"{item.image_id}.txt", item.label_path)):
            link.unlink(missing_ok=True)
            link.symlink_to(target.resolve())
    return len(items)
