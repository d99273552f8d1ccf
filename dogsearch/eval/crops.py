"""`dogsearch eval crops`: does embedding the dog beat embedding the photo, and with how much margin around it?

Leave-one-out breed retrieval (``retrieval.retrieval_metrics``: R@1, R@5, mAP) on sets of photos, each photo (as
query and as gallery alike) embedded as one *view*:

* ``whole``: the whole photo, as the service embeds it today;
* ``labelled@m``: the labelled dog box cropped with margin ``m`` (``core.boxes.crop``): a perfect detector's crop,
  the upper bound; only on sets with boxes;
* ``detected@m``: the detector's largest dog box cropped with margin ``m``; where it finds no dog (every box scored
  at or below ``FALLBACK_SCORE``) the whole photo, as the service would.

The sets:

* **small dogs** (``small_dogs``): labelled photos (YOLO-pose label files, as ``eval detect`` reads them) whose
  dog's box covers less than ``max_share`` of the photo; the breed is the ImageNet synset the photo id starts with;
* **composed** (``plan_composition``): dog photos of DIR/<breed>/ scaled to a share of the area of a larger non-dog
  scene and pasted there, at a place and scale drawn per photo from a seeded hash (the same on every run); the
  pasted rectangle is the labelled box;
* **plain**: DIR/<breed>/<photo> as they are (the check that cropping loses nothing where the dog fills the photo).

Embeddings and detections are cached per crop rectangle (``cache_dir``), so views that clip to the same pixels
are embedded once and a rerun with another detector only embeds what changed.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dogsearch.core.boxes import SMALL_SHARE, Box, area, expand, iou, share
from dogsearch.eval.detect import dog_boxes, find_labelled, find_photos, sample
from dogsearch.eval.retrieval import retrieval_metrics
from dogsearch.eval.splits import labelled_images
from dogsearch.models.detect import Detection, Detector
from dogsearch.pose.labels import parse_label_file

DEFAULT_MARGINS = (0.0, 0.1, 0.2, 0.3)
COMPOSE_SHARE = (0.10, 0.30)  # area share of the pasted dog photo in the scene
SCENE_SIDE = 640  # scenes are scaled to this longer side, so the dog photos (160 px short side) are not shrunk much
COMPOSE_VERSION = 1  # part of a composed photo's cache key: bump when the drawing changes
SAVE_EVERY_S = 120  # the cache is written at least this often while a set is embedded
PLAIN_TOLERANCE = 0.01  # the most a chosen margin may lose on a plain set, R@1 or mAP (about one standard error)

Rect = tuple[int, int, int, int]


@dataclass(frozen=True)
class Composition:
    """Where a dog photo goes in a scene: the scene's size after scaling, and the rectangle the dog fills."""

    scene: Path
    size: tuple[int, int]
    box: Rect

    @property
    def share(self) -> float:
        return share(self.box, *self.size)


@dataclass(frozen=True)
class Item:
    """One photo of a set: its cache key, breed, where its pixels come from, and the labelled dog box if any."""

    key: str
    label: str
    path: Path
    box: Box | None = None
    composition: Composition | None = None

    def image(self) -> Image.Image:
        dog = _load(self.path)
        return dog if self.composition is None else compose(dog, self.composition)


def _load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(int(hashlib.sha256(f"dogsearch-compose:{seed}:{key}".encode()).hexdigest()[:16], 16))


def scene_size(width: int, height: int, side: int = SCENE_SIDE) -> tuple[int, int]:
    """A scene's size scaled (up, usually) to ``side`` on its longer side."""
    scale = side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def plan_composition(key: str, dog_size: tuple[int, int], scenes: Sequence[tuple[Path, tuple[int, int]]], *,
                     seed: int = 0, share: tuple[float, float] = COMPOSE_SHARE,
                     side: int = SCENE_SIDE) -> Composition:
    """The scene, scale and place for the dog photo ``key`` of size ``dog_size``: drawn from a hash of ``seed`` and
    ``key`` (so each photo gets the same on every run, whatever else is in the set), the dog keeping its aspect
    ratio and covering a share of the scene's area drawn uniformly from ``share`` (narrowed where the dog would not
    fit), placed uniformly inside the scene."""
    lo, hi = share
    if not 0 < lo <= hi < 1:
        raise ValueError(f"share must be 0 < low <= high < 1, not {share}")
    if not scenes:
        raise ValueError("no scene to compose into")
    rng = _rng(seed, key)
    scene, (sw, sh) = scenes[rng.randrange(len(scenes))]
    width, height = scene_size(sw, sh, side)
    ratio = dog_size[0] / dog_size[1]
    fits = min(width / (ratio * height), ratio * height / width)  # the largest share at which the dog still fits
    top = min(hi, fits)
    if top < lo:
        raise ValueError(f"a {dog_size[0]}x{dog_size[1]} dog photo cannot cover {lo:.0%} of the {width}x{height} "
                         f"scene {scene.name}")
    target = rng.uniform(lo, top) * width * height
    dw = min(width, max(1, round(math.sqrt(target * ratio))))
    dh = min(height, max(1, round(math.sqrt(target / ratio))))
    x0, y0 = rng.randint(0, width - dw), rng.randint(0, height - dh)
    return Composition(scene, (width, height), (x0, y0, x0 + dw, y0 + dh))


def compose(dog: Image.Image, plan: Composition) -> Image.Image:
    """The dog photo pasted into its scene, as ``plan`` says."""
    scene = _load(plan.scene).resize(plan.size, Image.Resampling.BICUBIC)
    x0, y0, x1, y1 = plan.box
    scene.paste(dog.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC), (x0, y0))
    return scene


def breed_of(image_id: str) -> str:
    """The ImageNet synset a photo id starts with (``n02086240_1011`` -> ``n02086240``): a dogpose photo's breed."""
    return image_id.split("_", 1)[0]


def largest(boxes: Iterable[Box]) -> Box | None:
    return max(boxes, key=area, default=None)


def is_small(box: Box, width: int, height: int, max_share: float = SMALL_SHARE) -> bool:
    """The small-dog rule: the dog's box covers less than ``max_share`` of the photo."""
    return share(box, width, height) < max_share


def small_dogs(directory: Path, image_dirs: Sequence[Path] = (), *,
               max_share: float = SMALL_SHARE) -> tuple[list[Item], int]:
    """The labelled photos whose dog is small (its largest labelled box, when a photo has several), and how many
    labelled photos there were."""
    pairs = find_labelled(Path(directory), image_dirs)
    items = []
    for image_path, label in pairs:
        with Image.open(image_path) as im:
            width, height = im.size
        box = largest(tuple(float(v) for v in dog.box.tolist()) for dog in parse_label_file(label, width, height))
        if box is not None and is_small(box, width, height, max_share):
            items.append(Item(f"file:{image_path.resolve()}", breed_of(label.stem), image_path, box))
    return items, len(pairs)


def plain(directory: Path) -> list[Item]:
    return [Item(f"file:{path.resolve()}", label, path) for path, label in labelled_images(directory)]


def composed(directory: Path, scenes_dir: Path, *, seed: int = 0, share: tuple[float, float] = COMPOSE_SHARE,
             side: int = SCENE_SIDE) -> list[Item]:
    """Every photo of DIR/<breed>/ pasted into one of the scenes (``plan_composition``)."""
    scenes = []
    for path in find_photos(scenes_dir):
        with Image.open(path) as im:
            scenes.append((path, im.size))
    root = Path(directory).resolve()
    items = []
    for path, label in labelled_images(directory):
        with Image.open(path) as im:
            size = im.size
        rel = path.resolve().relative_to(root).as_posix()
        plan = plan_composition(rel, size, scenes, seed=seed, share=share, side=side)
        key = (f"compose-v{COMPOSE_VERSION}:{path.resolve()}|{plan.scene.resolve()}|{plan.size}|{plan.box}")
        items.append(Item(key, label, path, tuple(float(v) for v in plan.box), plan))
    return items


def keep_retrievable(items: list[Item]) -> list[Item]:
    """Leave-one-out needs a second photo of each breed: the breeds with one photo are left out."""
    counts = Counter(item.label for item in items)
    return [item for item in items if counts[item.label] >= 2]


class Cache:
    """Embeddings (per model) and detections (per detector) of crop rectangles of cached photos, in ``directory``
    (nothing is kept on disk without one)."""

    def __init__(self, directory: Path | None, model_id: str, detector: str) -> None:
        self.directory = Path(directory) if directory else None
        self._emb_file = self._file("embeddings", model_id, "npz")
        self._det_file = self._file("detections", detector, "json")
        self.vectors: dict[str, np.ndarray] = {}
        self.detections: dict[str, list] = {}
        if self._emb_file and self._emb_file.is_file():
            with np.load(self._emb_file) as data:
                self.vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        if self._det_file and self._det_file.is_file():
            self.detections = json.loads(self._det_file.read_text())

    def _file(self, kind: str, name: str, suffix: str) -> Path | None:
        if self.directory is None:
            return None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.directory / kind / f"{safe}.{suffix}"

    def save(self) -> None:
        if self._emb_file is None or self._det_file is None:
            return
        for path in (self._emb_file, self._det_file):
            path.parent.mkdir(parents=True, exist_ok=True)
        if self.vectors:
            keys = list(self.vectors)
            tmp = self._emb_file.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
            tmp.replace(self._emb_file)
        tmp = self._det_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.detections))
        tmp.replace(self._det_file)


def detect_cached(detector: Detector, cache: Cache, item: Item, image: Image.Image) -> list[Detection]:
    if item.key not in cache.detections:
        cache.detections[item.key] = [[list(d.box), d.score] for d in detector.detect(image)]
    return [Detection(tuple(box), score) for box, score in cache.detections[item.key]]


def view_names(margins: Sequence[float], labelled: bool) -> list[str]:
    names = ["whole"]
    if labelled:
        names += [f"labelled@{m:g}" for m in margins]
    return names + [f"detected@{m:g}" for m in margins]


def evaluate_set(name: str, items: Sequence[Item], model, detector: Detector, cache: Cache, *,
                 margins: Sequence[float] = DEFAULT_MARGINS, batch_size: int = 32,
                 progress: Callable = lambda it, **_: it) -> dict:
    """Every view's leave-one-out breed metrics on ``items``, and how the detector's boxes compare with the
    labelled ones."""
    items = keep_retrievable(list(items))
    if len(items) < 2:
        raise ValueError(f"set {name}: no breed with at least 2 photos")
    labelled = all(item.box is not None for item in items)
    views = view_names(margins, labelled)
    rects: dict[str, list[str]] = {view: [] for view in views}  # view -> each item's embedding key
    pending: list[tuple[str, torch.Tensor]] = []
    no_dog, overlaps, shares = 0, [], []
    start = saved = time.perf_counter()

    def flush() -> None:
        nonlocal saved
        if pending:
            vectors = model.embed(torch.stack([t for _, t in pending]))
            cache.vectors.update(zip([k for k, _ in pending], vectors, strict=True))
            pending.clear()
        if time.perf_counter() - saved > SAVE_EVERY_S:  # a run stopped early keeps most of its work
            cache.save()
            saved = time.perf_counter()

    for item in progress(items, desc=f"eval crops {name}", unit="photo"):
        image = item.image()
        width, height = image.size
        found = largest(d.box for d in dog_boxes(detect_cached(detector, cache, item, image)))
        no_dog += found is None
        if item.box is not None:
            shares.append(share(item.box, width, height))
            overlaps.append(0.0 if found is None else iou(found, item.box))
        for view in views:
            kind, _, margin = view.partition("@")
            box = item.box if kind == "labelled" else found if kind == "detected" else None
            rect: Rect = (0, 0, width, height) if box is None else expand(box, float(margin), width, height)
            key = f"{item.key}#{rect}"
            rects[view].append(key)
            if key not in cache.vectors and all(k != key for k, _ in pending):
                pending.append((key, model.preprocess(image.crop(rect))))
                if len(pending) >= batch_size:
                    flush()
    flush()
    labels = [item.label for item in items]
    metrics = {view: {k: round(v, 4) for k, v in
                      retrieval_metrics(np.stack([cache.vectors[k] for k in keys]), labels).items()}
               for view, keys in rects.items()}
    out = {
        "n_images": len(items),
        "n_labels": len(set(labels)),
        "views": metrics,
        "no_dog_found": no_dog,
        "seconds": round(time.perf_counter() - start, 1),
    }
    if labelled:  # how the detector's largest box (none: IoU 0) meets the labelled dog
        out["dog_share_mean"] = round(float(np.mean(shares)), 4)
        out["detected_iou_mean"] = round(float(np.mean(overlaps)), 4)
        out["detected_iou_0.5"] = round(float(np.mean([o >= 0.5 for o in overlaps])), 4)
    return out


def choose_margin(result: dict, margins: Sequence[float], tolerance: float = PLAIN_TOLERANCE) -> dict | None:
    """The margin the service should crop with: the best mean mAP of ``detected@m`` over the small-dog and composed
    sets, among the margins that lose at most ``tolerance`` (R@1 and mAP) against the whole photo on every plain set;
    when none does, the one that loses least there. None without a small-dog or composed set."""
    sets = result["sets"]
    gains = [s for s in ("small", "composed") if s in sets]
    if not gains:
        return None
    scores = {m: float(np.mean([sets[s]["views"][f"detected@{m:g}"]["map"] for s in gains])) for m in margins}
    plains = [s for s in ("plain",) if s in sets]

    def plain_loss(m: float) -> float:  # the worst drop against the whole photo, R@1 or mAP, on any plain set
        return max((sets[p]["views"]["whole"][k] - sets[p]["views"][f"detected@{m:g}"][k]
                    for p in plains for k in ("recall@1", "map")), default=0.0)

    allowed = [m for m in margins if plain_loss(m) <= tolerance + 1e-9]
    # where every margin loses on plain photos, the one that loses least
    best = max(allowed, key=lambda m: (scores[m], -m)) if allowed else \
        min(margins, key=lambda m: (plain_loss(m), -scores[m]))
    return {"margin": best, "objective": {f"{m:g}": round(scores[m], 4) for m in margins},
            "plain_loss": {f"{m:g}": round(plain_loss(m), 4) for m in margins},
            "keeps_plain": {f"{m:g}": m in allowed for m in margins}, "plain_tolerance": tolerance,
            "sets": gains + plains, "any_keeps_plain": bool(allowed)}


def evaluate(model, detector: Detector, *, small: Path | None = None, image_dirs: Sequence[Path] = (),
             composed_dir: Path | None = None, scenes: Path | None = None, plain_dir: Path | None = None,
             margins: Sequence[float] = DEFAULT_MARGINS, limit: int | None = None, seed: int = 0,
             max_share: float = SMALL_SHARE, share: tuple[float, float] = COMPOSE_SHARE, side: int = SCENE_SIDE,
             cache_dir: Path | None = None, batch_size: int = 32, progress: Callable = lambda it, **_: it) -> dict:
    """The whole `eval crops` answer: each set's views, and the margin they choose (``choose_margin``).
    ``limit``: at most that many photos of each set, spread evenly over it (``detect.sample``)."""
    if composed_dir is not None and scenes is None:
        raise ValueError("composing dog photos needs a folder of scenes without dogs")
    if any(m < 0 for m in margins) or not margins:
        raise ValueError(f"margins must be one or more numbers >= 0, not {list(margins)}")
    cache = Cache(cache_dir, model.model_id, detector.name)
    result: dict = {"model": model.model_id, "detector": detector.name, "margins": list(margins), "sets": {}}
    plans: list[tuple[str, list[Item], dict]] = []
    if small is not None:
        items, n_labelled = small_dogs(small, image_dirs, max_share=max_share)
        plans.append(("small", items, {"dir": str(small), "max_share": max_share, "n_labelled": n_labelled}))
    if composed_dir is not None:
        plans.append(("composed", composed(composed_dir, scenes, seed=seed, share=share, side=side),
                      {"dir": str(composed_dir), "scenes": str(scenes), "seed": seed, "share": list(share),
                       "scene_side": side}))
    if plain_dir is not None:
        plans.append(("plain", plain(plain_dir), {"dir": str(plain_dir)}))
    if not plans:
        raise ValueError("no set to evaluate: give --small, --composed (with --scenes) or --plain")
    try:
        for name, items, about in plans:
            result["sets"][name] = {**about, **evaluate_set(name, sample(items, limit), model, detector, cache,
                                                            margins=margins, batch_size=batch_size,
                                                            progress=progress)}
            cache.save()
    finally:
        cache.save()
    result["choice"] = choose_margin(result, margins)
    return result
