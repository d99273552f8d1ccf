"""A tiny deterministic stand-in for the embedding model: unit tests need speed, not accuracy."""
from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import numpy as np
import torch
from PIL import Image


class ColorGridModel:
    """Mean colour of each cell of a 4x4 grid, centred and L2-normalised: same picture, same vector;
    pictures of similar colours, similar vectors."""

    model_id = "test-color-grid"
    dim = 48
    data_config = {"input_size": (3, 4, 4), "mean": (0.5, 0.5, 0.5), "std": (1.0, 1.0, 1.0)}
    device = torch.device("cpu")
    decode_side = 64  # large JPEGs shrink on load, as for a real model

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self._calls_lock = threading.Lock()

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        small = image.convert("RGB").resize((4, 4), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1) - 0.5

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        with self._calls_lock:
            self.batch_sizes.append(batch.shape[0])
        flat = batch.reshape(batch.shape[0], -1).numpy().astype(np.float32)
        flat = flat + 1e-3  # a mid-grey picture would otherwise be the zero vector
        return flat / np.linalg.norm(flat, axis=1, keepdims=True)

    def embed_images(self, images) -> np.ndarray:
        return self.embed(torch.stack([self.preprocess(im) for im in images]))


# -- pose ------------------------------------------------------------------------------------------------------

# A standing dog facing left, as fractions of its box (AP-10K order, then the tail tip).
STANDING_DOG = (
    (0.15, 0.15), (0.20, 0.15), (0.05, 0.22), (0.30, 0.30), (0.85, 0.35),
    (0.30, 0.45), (0.30, 0.65), (0.30, 0.95), (0.35, 0.45), (0.35, 0.65), (0.35, 0.95),
    (0.80, 0.45), (0.80, 0.70), (0.80, 0.95), (0.85, 0.45), (0.85, 0.70), (0.85, 0.95),
    (0.98, 0.15),
)


class FakePoseModel:
    """Places the standing-dog template in each box, every keypoint scored 0.9."""

    model_id = "test-standing-template"
    runtime = "torch"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, image: Image.Image, boxes) -> list:
        from dogsearch.models.pose import keypoints as K
        from dogsearch.models.pose.model import BoxPose

        self.calls += 1
        out = []
        for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            rel = np.array(STANDING_DOG)
            points = np.stack([x1 + rel[:, 0] * (x2 - x1), y1 + rel[:, 1] * (y2 - y1)], axis=1)
            out.append(BoxPose(points.astype(np.float32), np.full(len(rel), 0.9, np.float32), K.MODEL_NAMES))
        return out


class FakeDetector:
    """The box around the pixels that differ from the top-left corner's colour (one 'dog'), score 0.9."""

    name = "test-not-background"

    def detect(self, image: Image.Image) -> list:
        from dogsearch.models.detect import Detection, WholeImageDetector

        arr = np.asarray(image.convert("RGB"), dtype=np.int16)
        mask = np.abs(arr - arr[0, 0]).sum(axis=2) > 30
        if not mask.any():
            return WholeImageDetector().detect(image)
        ys, xs = np.nonzero(mask)
        return [Detection((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)), 0.9)]


def fake_pose_pipeline():
    from dogsearch.pose.pipeline import PosePipeline

    return PosePipeline(FakePoseModel(), FakeDetector())


# -- finding dogs (the embedder's detector and classifier) ----------------------------------------------------------

class BlobDetector:
    """A box around each blob of pixels that differ from the photo's border colour (its median), largest first,
    score 0.9: a uniform photo shows no dog. Blobs are found on a 16x16 grid; specks under 2 cells are ignored."""

    name = "test-blobs"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: Image.Image) -> list:
        from dogsearch.models.detect import Detection, connected_regions

        self.calls += 1
        arr = np.asarray(image.convert("RGB"), dtype=np.int16)
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        background = np.median(border, axis=0)
        mask = np.abs(arr - background).sum(axis=2) > 60
        grid = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((16, 16), Image.Resampling.BOX)) > 127
        sx, sy = image.width / 16, image.height / 16
        found = []
        for cells in connected_regions(grid):
            if len(cells) < 2:
                continue
            ys, xs = zip(*cells, strict=True)
            found.append(Detection((min(xs) * sx, min(ys) * sy, (max(xs) + 1) * sx, (max(ys) + 1) * sy), 0.9))
        return found


# The fake classifier's breed of a crop by its dominant channel, and what a whole photo "seems".
FAKE_BREEDS = {0: "Irish setter", 1: "Border terrier", 2: "Kerry blue terrier"}


class FakeClassifier:
    """Breeds and labels from the image's mean colour: the dominant channel's breed first (p 0.7), then the others."""

    def __init__(self) -> None:
        self.calls = 0  # batches
        self.images = 0  # images in them

    def classify(self, images) -> list:
        from dogsearch.models.dogclass import Classification, Label

        self.calls += 1
        self.images += len(images)
        out = []
        for im in images:
            mean = np.asarray(im.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)
            order = [int(i) for i in np.argsort(-mean)]
            breeds = tuple(Label(FAKE_BREEDS[c], p) for c, p in zip(order, (0.7, 0.2, 0.1), strict=True))
            labels = (Label("golf ball", 0.71), Label("tennis ball", 0.2), Label("beagle", 0.0004))  # no guess
            out.append(Classification(0.05, breeds, labels))
        return out


def fake_image_models(model: ColorGridModel | None = None) -> dict:
    """The embedder's models as tests fake them: create_app's / create_all_in_one's keyword arguments."""
    return {"model_factory": (lambda: model) if model is not None else ColorGridModel,
            "detector_factory": BlobDetector, "classifier_factory": FakeClassifier}


def fake_all_in_one(data_dir, model: ColorGridModel | None = None, *, detector: bool = False, **options):
    """create_all_in_one with the fake image models. Without `detector`, the embedder's detector is off (the whole
    photo is the dog): the tests of everything but finding dogs upload plain colours and patterns, stored as before
    dogs were detected. With it, the blob detector finds the dogs."""
    from dogsearch.services.allinone import create_all_in_one
    from dogsearch.services.embedder.settings import EmbedderSettings

    settings = EmbedderSettings() if detector else EmbedderSettings(detector="none")
    return create_all_in_one(data_dir, **fake_image_models(model), embedder_settings=settings, **options)


@asynccontextmanager
async def serving(app) -> AsyncIterator[httpx.AsyncClient]:
    """`app` started (its lifespan run) and a client calling it in-process, over httpx's ASGI transport."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client
