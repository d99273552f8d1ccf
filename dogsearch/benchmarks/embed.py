"""Embedder service throughput under concurrent load ÷ the bare model forward at its best batch size."""
from __future__ import annotations

import asyncio
import time

import httpx
import torch
from PIL import Image

from dogsearch.benchmarks.common import sample_photos, server
from services.embedder.model import model_from_settings
from services.embedder.settings import EmbedderSettings

BATCH_SIZES = (1, 4, 8, 16, 32)


def bare_images_per_s(model, tensors: list[torch.Tensor], batch_size: int, images: int) -> float:
    batch = torch.stack([tensors[i % len(tensors)] for i in range(batch_size)])
    model.embed(batch)  # warm-up: first calls allocate
    rounds = max(1, images // batch_size)
    start = time.perf_counter()
    for _ in range(rounds):
        model.embed(batch)
    return rounds * batch_size / (time.perf_counter() - start)


async def service_images_per_s(url: str, photos: list[bytes], requests: int, concurrency: int) -> tuple[float, int]:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def one(i: int) -> bool:
            r = await client.post("/v1/embed", files=[("images", ("p.jpg", photos[i % len(photos)]))])
            return r.status_code == 200

        await asyncio.gather(*(one(i) for i in range(concurrency)))  # warm-up
        queue = iter(range(requests))
        errors = 0

        async def user() -> None:
            nonlocal errors
            for i in queue:
                errors += not await one(i)

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        return requests / (time.perf_counter() - start), errors


def run(quick: bool = False) -> dict:
    model = model_from_settings(EmbedderSettings())
    paths = sample_photos()
    tensors = [model.preprocess(Image.open(p).convert("RGB")) for p in paths]
    images = 64 if quick else 256
    bare = {bs: bare_images_per_s(model, tensors, bs, images) for bs in BATCH_SIZES}
    best = max(bare, key=bare.get)
    del model  # the service loads its own copy; keep this process light while it runs

    photos = [p.read_bytes() for p in paths]
    env = {"DOGSEARCH_EMBEDDER_BATCH_MAX_SIZE": str(best)}
    with server("embedder", env=env) as (url, _):
        served, errors = asyncio.run(service_images_per_s(url, photos, requests=images * 2,
                                                          concurrency=max(8, 2 * best)))
    return {
        "embed_bare_images_per_s": round(bare[best], 1),
        "embed_bare_best_batch_size": best,
        "embed_bare_images_per_s_by_batch": {str(k): round(v, 1) for k, v in bare.items()},
        "embed_service_images_per_s": round(served, 1),
        "embed_service_errors": errors,
        "embed_service_over_bare": round(served / bare[best], 3),
    }
