"""What a photo (or a crop of it) shows, from the ImageNet head of ``efficientnet_lite0``: how likely it is a dog,
which breed it looks like, and, when it is no dog, what it seems to be.

ImageNet's dog classes are the domestic breeds 151-268 (Chihuahua .. Mexican hairless) and the wild dogs 269-275
(wolves, coyote, dingo, dhole, African hunting dog). The dog probability sums all of them: a husky is often called
a wolf. Breed suggestions come from the domestic breeds and the dingo (a breed in our own data), renormalised over
those classes, so ``p`` reads "which breed, given that it is a dog".
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from dogsearch.inference.runtimes import Forward

DOG_CLASSES = range(151, 276)
BREED_CLASSES = (*range(151, 269), 273)
# A label under 1 % is no guess at what a photo shows: the tail of 1000 classes (a plain photo's third label is often
# 0.0004), which a client shows as "0 %".
SEEMS_FLOOR = 0.01


@dataclass(frozen=True)
class Label:
    name: str
    p: float


@dataclass(frozen=True)
class Classification:
    dog: float  # probability that the image shows a dog (sum over ImageNet's dog classes)
    breeds: tuple[Label, ...]  # the likeliest breeds, p given that it is a dog
    labels: tuple[Label, ...]  # the likeliest ImageNet classes overall: what the image seems to show

    def seems(self) -> list[dict]:
        """An answer's `seems` ([{"label", "p"}], a no_dog_found's and a detection's): the labels of SEEMS_FLOOR
        or more."""
        return [{"label": x.name, "p": x.p} for x in self.labels if x.p >= SEEMS_FLOOR]


@cache
def imagenet_names() -> tuple[str, ...]:
    """ImageNet-1k class names (the first lemma of each synset: "beagle", "golf ball"), from timm's bundled info."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def breed_name(index: int) -> str:
    """The breed label of an ImageNet class, as users write it ("golden retriever", "Shih-Tzu")."""
    return imagenet_names()[index].replace("_", " ")


def summarise(probs: np.ndarray, *, top_breeds: int = 3, top_labels: int = 3) -> Classification:
    """One image's 1000 ImageNet probabilities -> dog probability, top breeds, top labels."""
    probs = np.asarray(probs, dtype=np.float64)
    names = imagenet_names()
    dog = float(probs[DOG_CLASSES.start:DOG_CLASSES.stop].sum())
    breed_idx = np.asarray(BREED_CLASSES)
    breed_p = probs[breed_idx]
    breed_p = breed_p / max(float(breed_p.sum()), 1e-12)
    order = np.argsort(-breed_p)[:top_breeds]
    breeds = tuple(Label(breed_name(int(breed_idx[i])), round(float(breed_p[i]), 4)) for i in order)
    labels = tuple(Label(names[int(i)], round(float(probs[i]), 4)) for i in np.argsort(-probs)[:top_labels])
    return Classification(round(min(dog, 1.0), 4), breeds, labels)


class DogClassifier:
    """EfficientNet-Lite0 with its ImageNet head (weights from the registry package, checksum-verified), built on
    first use behind a lock; ``classify`` takes PIL images (whole photos or dog crops). ``runtime``: ``"torch"``, or
    ``"onnxruntime"`` / ``"openvino"`` (its ONNX export, cached in ``cache_dir``, with ``threads`` threads; the CPU
    only); ``precision``: ``"fp32"``, or ``"bf16"`` on openvino."""

    def __init__(self, *, device: str = "cpu", cache_dir: str | None = None, runtime: str = "torch",
                 threads: int | None = None, precision: str = "fp32") -> None:
        from dogsearch.inference.runtimes import check_runtime

        check_runtime(runtime, device, precision)
        self._device, self._cache_dir, self._runtime, self._threads = device, cache_dir, runtime, threads
        self._precision = precision
        self._lock = threading.Lock()
        self._model: tuple[Forward, object] | None = None

    def _load(self) -> tuple[Forward, object]:
        with self._lock:
            if self._model is None:
                import timm.data

                from dogsearch.inference.runtimes import EXPORT_RUNTIMES, TorchForward, cached_onnx, export_forward
                from dogsearch.models.efficientnet import LITE0_MODEL
                from dogsearch.models.embedding import split_eval_transform
                from dogsearch.models.registry import DEFAULT_CACHE_DIR, build_backbone

                module, _, config = build_backbone(LITE0_MODEL, num_classes=1000, cache_dir=self._cache_dir)
                # timm's eval transform, its ToTensor and Normalize done on the whole batch on the model's device
                # (the same operations, the same bits): the crops' CPU work is the resizing alone
                resize, mean, std = split_eval_transform(timm.data.create_transform(**config, is_training=False))
                transform = (resize, mean.to(self._device), std.to(self._device))
                if self._runtime in EXPORT_RUNTIMES:
                    path = cached_onnx(module, f"{LITE0_MODEL}-imagenet", config["input_size"],
                                       self._cache_dir or DEFAULT_CACHE_DIR)
                    forward: Forward = export_forward(path, self._runtime, self._threads, precision=self._precision)
                else:
                    forward = TorchForward(module.to(self._device), torch.device(self._device), self._precision)
                self._model = (forward, transform)
            return self._model

    def probabilities(self, images: list[Image.Image]) -> np.ndarray:
        """(n, 1000) softmax probabilities."""
        if not images:
            return np.zeros((0, 1000), dtype=np.float32)
        from dogsearch.models.embedding import pixels

        forward, (resize, mean, std) = self._load()
        batch = torch.stack([pixels(resize(im.convert("RGB"))) for im in images]).to(self._device)
        with torch.inference_mode():
            x = batch.float().div_(255).sub_(mean).div_(std)
            return torch.softmax(forward(x).float(), dim=1).cpu().numpy()

    def classify(self, images: list[Image.Image], *, top_breeds: int = 3,
                 top_labels: int = 3) -> list[Classification]:
        return [summarise(p, top_breeds=top_breeds, top_labels=top_labels) for p in self.probabilities(images)]
