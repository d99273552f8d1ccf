"""The pose pipeline as the service runs it (saliency boxes, then keypoints for each dog): ms per photo one at a
time, and per photo in the service's batches."""
from __future__ import annotations

import time

from PIL import Image

from dogsearch.bench.common import sample_photos
from dogsearch.services.pose.app import pipeline_from_settings
from dogsearch.services.pose.settings import PoseSettings


def run(quick: bool = False) -> dict:
    settings = PoseSettings()
    pipeline = pipeline_from_settings(settings)
    photos = [Image.open(p).convert("RGB") for p in sample_photos()[: 10 if quick else 50]]
    pipeline.run(photos[0])  # warm-up
    start = time.perf_counter()
    dogs = sum(len(pipeline.run(photo)["dogs"]) for photo in photos)
    single = (time.perf_counter() - start) / len(photos)
    size = settings.batch_max_size
    start = time.perf_counter()
    for i in range(0, len(photos), size):
        pipeline.run_batch(photos[i:i + size])
    batched = (time.perf_counter() - start) / len(photos)
    return {
        "pose_ms_per_photo": round(single * 1000, 1),
        "pose_ms_per_photo_batched": round(batched * 1000, 1),
        "pose_batch_size": size,
        "pose_dogs_per_photo": round(dogs / len(photos), 2),
        "pose_model": pipeline.model_id,
    }
