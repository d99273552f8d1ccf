"""The detector's training photos: dogpose dog boxes, photos without a dog, and compositions made of them.

Photos are split by ``dogsearch.eval.detect.split_of`` (the one rule): only "train" photos are used here. The
training split is cut once more by the same hash: buckets below ``FIT_BELOW`` fit the head, the rest of the
training split (``"calibrate"``) chooses the operating points, so neither is chosen on photos the head learnt.

Compositions teach what the labelled photos lack: small dogs (a dog's crop scaled down and pasted into a scene
without a dog) and several dogs in one photo (two dog photos side by side, or several pasted dogs). Patches of
photos without a dog are pasted too, with no box, so a pasted rectangle is not itself the cue.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from dogsearch.core.boxes import expand
from dogsearch.eval.detect import bucket, find_labelled, find_photos, split_of
from dogsearch.pose.labels import parse_label_file

FIT_BELOW = 55  # buckets 0-54 fit the head, 55-69 calibrate it, 70-99 are held out (eval.detect.HELD_OUT_FROM)
Box = tuple[float, float, float, float]


@dataclass
class Sample:
    image: Image.Image
    boxes: list[Box] = field(default_factory=list)
    source: str = ""


def part_of(path: str | Path) -> str:
    """"fit", "calibrate" or "held-out"."""
    if split_of(path) == "held-out":
        return "held-out"
    return "fit" if bucket(path) < FIT_BELOW else "calibrate"


def load(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def labelled_samples(directory: Path, image_dirs: Sequence[Path], part: str) -> list[Sample]:
    out = []
    for image_path, label in find_labelled(directory, image_dirs):
        if part_of(image_path) != part:
            continue
        image = load(image_path)
        boxes = [tuple(float(v) for v in d.box) for d in parse_label_file(label, image.width, image.height)]
        out.append(Sample(image, boxes, image_path.name))
    return out


def negative_samples(directories: Sequence[Path], part: str) -> list[Sample]:
    return [Sample(load(p), [], p.name) for d in directories for p in find_photos(d) if part_of(p) == part]


def mirror(sample: Sample) -> Sample:
    w = sample.image.width
    return Sample(sample.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                  [(w - x1, y0, w - x0, y1) for x0, y0, x1, y1 in sample.boxes], sample.source + ":mirror")


def dog_patch(sample: Sample, index: int = 0, margin: float = 0.15) -> tuple[Image.Image, Box]:
    """A dog's crop with some of its surroundings, and the dog's box inside the crop."""
    box = sample.boxes[index]
    left, top, right, bottom = expand(box, margin, sample.image.width, sample.image.height)
    return sample.image.crop((left, top, right, bottom)), (box[0] - left, box[1] - top, box[2] - left,
                                                           box[3] - top)


def paste(scene: Sample, patches: Sequence[tuple[Image.Image, Box | None]], rng: random.Random, *,
          smallest: float = 0.12, largest: float = 0.45) -> Sample:
    """``patches`` scaled so each one's longer side is ``smallest``..``largest`` of the scene's longer side and
    pasted at random places, later ones over earlier ones; a patch's box (None: no dog) comes along.
    A box mostly covered by a later patch is dropped, so a hidden dog is not asked for."""
    canvas = scene.image.copy()
    boxes = list(scene.boxes)
    side = max(canvas.width, canvas.height)
    placed: list[tuple[Box, tuple[int, int, int, int]]] = [(b, (0, 0, 0, 0)) for b in boxes]
    for patch, box in patches:
        scale = rng.uniform(smallest, largest) * side / max(patch.width, patch.height)
        w, h = max(4, round(patch.width * scale)), max(4, round(patch.height * scale))
        w, h = min(w, canvas.width), min(h, canvas.height)
        x, y = rng.randint(0, canvas.width - w), rng.randint(0, canvas.height - h)
        canvas.paste(patch.resize((w, h), Image.Resampling.BILINEAR), (x, y))
        rect = (x, y, x + w, y + h)
        placed = [(b, r) for b, r in placed if _covered(b, rect) < 0.5]
        if box is not None:
            sx, sy = w / patch.width, h / patch.height
            placed.append(((x + box[0] * sx, y + box[1] * sy, x + box[2] * sx, y + box[3] * sy), rect))
    return Sample(canvas, [b for b, _ in placed], scene.source + ":paste")


def _covered(box: Box, rect: tuple[int, int, int, int]) -> float:
    """The share of ``box`` that ``rect`` covers."""
    iw = max(0.0, min(box[2], rect[2]) - max(box[0], rect[0]))
    ih = max(0.0, min(box[3], rect[3]) - max(box[1], rect[1]))
    area = max(1e-6, (box[2] - box[0]) * (box[3] - box[1]))
    return iw * ih / area


def side_by_side(a: Sample, b: Sample) -> Sample:
    """Two photos at one height, ``a`` left of ``b``: a photo with both one's dogs."""
    h = min(a.image.height, b.image.height)
    sa, sb = h / a.image.height, h / b.image.height
    wa, wb = round(a.image.width * sa), round(b.image.width * sb)
    canvas = Image.new("RGB", (wa + wb, h))
    canvas.paste(a.image.resize((wa, h), Image.Resampling.BILINEAR), (0, 0))
    canvas.paste(b.image.resize((wb, h), Image.Resampling.BILINEAR), (wa, 0))
    boxes = [tuple(v * sa for v in box) for box in a.boxes]
    boxes += [(x0 * sb + wa, y0 * sb, x1 * sb + wa, y1 * sb) for x0, y0, x1, y1 in b.boxes]
    return Sample(canvas, boxes, f"{a.source}+{b.source}")


def random_patch(sample: Sample, rng: random.Random) -> Image.Image:
    """A random rectangle of a photo without a dog: pasted with no box."""
    w, h = sample.image.size
    pw, ph = rng.randint(w // 4, w // 2 + 1), rng.randint(h // 4, h // 2 + 1)
    x, y = rng.randint(0, w - pw), rng.randint(0, h - ph)
    return sample.image.crop((x, y, x + pw, y + ph))


def training_set(dogs: Sequence[Sample], negatives: Sequence[Sample], *, seed: int = 0, pasted_per_dog: int = 2,
                 pairs: int | None = None, pasted_negatives: int | None = None) -> list[Sample]:
    """Every photo and its mirror image, plus compositions, all from the given (training) photos only."""
    rng = random.Random(seed)
    out = [s for sample in (*dogs, *negatives) for s in (sample, mirror(sample))]
    if not dogs or not negatives:
        return out
    for _ in range(pasted_per_dog * len(dogs)):
        scene = rng.choice(negatives)
        n = rng.choices((1, 2, 3), weights=(0.6, 0.3, 0.1))[0]
        chosen = [rng.choice(dogs) for _ in range(n)]
        patches = [dog_patch(mirror(d) if rng.random() < 0.5 else d) for d in chosen]
        if rng.random() < 0.3:
            patches.insert(0, (random_patch(rng.choice(negatives), rng), None))
        out.append(paste(scene, patches, rng))
    for _ in range(len(dogs) // 2 if pairs is None else pairs):
        a, b = rng.sample(list(dogs), 2)
        out.append(side_by_side(a, b))
    for _ in range(len(negatives) // 2 if pasted_negatives is None else pasted_negatives):
        scene, other = rng.choice(negatives), rng.choice(negatives)
        out.append(paste(scene, [(random_patch(other, rng), None)], rng, smallest=0.2, largest=0.6))
    return out
