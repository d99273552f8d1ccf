"""The pose pipeline as the service runs it (the dogs' boxes, then keypoints for each dog), on one of the service's
inference threads (its intra-op threads, its runtime): ms per photo one at a time, and per photo in the service's
batches, with the CPU ms per photo of each (what a machine shared with other jobs disturbs least)."""
from __future__ import annotations

import time

from PIL import Image

from dogsearch.bench.common import cpu_seconds, sample_photos
from dogsearch.inference.runner import inference_pool
from dogsearch.services.pose.app import pipeline_from_settings
from dogsearch.services.pose.settings import PoseSettings


def run(quick: bool = False) -> dict:
    settings = PoseSettings()
    pool = inference_pool("bench-pose", 1, settings.torch_threads)
    try:
        return pool.submit(_measure, settings, quick).result()
    finally:
        pool.shutdown()


def _measure(settings: PoseSettings, quick: bool) -> dict:
    pipeline = pipeline_from_settings(settings)
    photos = [Image.open(p).convert("RGB") for p in sample_photos()[: 10 if quick else 50]]
    pipeline.run(photos[0])  # warm-up
    start, cpu = time.perf_counter(), cpu_seconds()
    dogs = sum(len(pipeline.run(photo)["dogs"]) for photo in photos)
    single, single_cpu = (time.perf_counter() - start) / len(photos), (cpu_seconds() - cpu) / len(photos)
    size = settings.batch_max_size
    start, cpu = time.perf_counter(), cpu_seconds()
    for i in range(0, len(photos), size):
        pipeline.run_batch(photos[i:i + size])
    batched, batched_cpu = (time.perf_counter() - start) / len(photos), (cpu_seconds() - cpu) / len(photos)
    return {
        "pose_ms_per_photo": round(single * 1000, 1),
        "pose_ms_per_photo_batched": round(batched * 1000, 1),
        "pose_cpu_ms_per_photo": round(single_cpu * 1000, 1),
        "pose_cpu_ms_per_photo_batched": round(batched_cpu * 1000, 1),
        "pose_batch_size": size,
        "pose_dogs_per_photo": round(dogs / len(photos), 2),
        "pose_model": pipeline.model_id,
        "pose_runtime": settings.runtime,
        "pose_threads": settings.torch_threads,
    }
