"""Embedder service throughput under concurrent load ÷ the bare model forward at its best batch size and layout of
threads (one team of all cores, or the service's replicas); the service runs with that batch size and layout. Then
a lone image's latency through the service (one request at a time). The model, runtime and precision are the
embedder's settings (DOGSEARCH_EMBEDDER_MODEL, _RUNTIME, _PRECISION)."""
from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import torch
from PIL import Image

from dogsearch.bench.common import forward_images_per_s, forward_layouts, process_cpu_seconds, sample_photos, server
from dogsearch.core.memory import tune_malloc
from dogsearch.services.embedder.settings import EmbedderSettings

BATCH_SIZES = (1, 4, 8, 16, 32)


async def service_images_per_s(urls: list[str], photos: list[bytes], requests: int, concurrency: int,
                               per_request: int = 1) -> tuple[float, int]:
    """(images/s, errors) of `concurrency` clients each sending `requests` /v1/embed requests of `per_request`
    photos in all, spread over the embedder servers at `urls` (client request i to server i mod their number)."""
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(i: int) -> bool:
            files = [("images", (f"{j}.jpg", photos[(i * per_request + j) % len(photos)])) for j in range(per_request)]
            r = await client.post(f"{urls[i % len(urls)]}/v1/embed", files=files)
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
        return requests * per_request / (time.perf_counter() - start), errors


async def lone_image_ms(url: str, photos: list[bytes], requests: int) -> float:
    """Median milliseconds of one photo's /v1/embed with nothing else in flight (decoding and HTTP included)."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        times = []
        for i in range(requests + 2):
            start = time.perf_counter()
            r = await client.post("/v1/embed", files=[("images", ("p.jpg", photos[i % len(photos)]))])
            r.raise_for_status()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times[2:])  # the first two warm up


def run(quick: bool = False) -> dict:
    settings = EmbedderSettings()
    if settings.tune_malloc:  # as the embedder does
        tune_malloc()
    model = settings.build_model()
    model_id, runtime = model.model_id, model.runtime
    paths = sample_photos()
    tensors = [model.preprocess(Image.open(p).convert("RGB")) for p in paths]
    images = 64 if quick else 256
    bare: dict[tuple[int, int, int], float] = {}
    bare_cpu: dict[tuple[int, int, int], float] = {}
    for replicas, threads in forward_layouts(settings):
        if runtime != "torch":  # its threads are fixed when its session is made: one per layout
            model = None
            model = settings.model_copy(update={"replicas": replicas, "torch_threads": threads}).build_model()
        for bs in BATCH_SIZES:
            batch = torch.stack([tensors[i % len(tensors)] for i in range(bs)])
            bare[replicas, threads, bs], bare_cpu[replicas, threads, bs] = forward_images_per_s(
                model.embed, [batch] * max(1, images // bs), replicas, threads)
    replicas, threads, best = max(bare, key=bare.get)
    del model  # the service loads its own copy; keep this process light while it runs

    photos = [p.read_bytes() for p in paths]
    env = {"DOGSEARCH_EMBEDDER_BATCH_MAX_SIZE": str(best), "DOGSEARCH_EMBEDDER_REPLICAS": str(replicas),
           "DOGSEARCH_EMBEDDER_TORCH_THREADS": str(threads)}
    with server("embedder", env=env) as (url, pid):
        cpu = process_cpu_seconds(pid)
        served, errors = asyncio.run(service_images_per_s([url], photos, requests=images * 2,
                                                          concurrency=max(8, 2 * best * replicas)))
        # the warm-up's images too: it runs inside this span
        served_cpu = 1000 * (process_cpu_seconds(pid) - cpu) / (images * 2 + max(8, 2 * best * replicas))
        lone = asyncio.run(lone_image_ms(url, photos, requests=8 if quick else 32))
    by_layout: dict[str, dict[str, float]] = {}
    for (r, t, bs), rate in bare.items():
        by_layout.setdefault(f"{r}x{t}", {})[str(bs)] = round(rate, 1)
    return {
        "embed_model": model_id,
        "embed_runtime": runtime,
        "embed_bare_images_per_s": round(bare[replicas, threads, best], 1),
        "embed_bare_best_batch_size": best,
        "embed_bare_best_layout": f"{replicas}x{threads}",
        "embed_bare_images_per_s_by_layout_and_batch": by_layout,
        "embed_service_images_per_s": round(served, 1),
        "embed_service_errors": errors,
        "embed_service_over_bare": round(served / bare[replicas, threads, best], 3),
        "embed_service_lone_image_ms": round(lone, 1),
        # CPU ms an image, the bare forward's at its best layout and batch against the whole service process's
        # (HTTP, decoding, preprocessing, batching, forward): what a machine shared with other jobs disturbs least
        "embed_bare_cpu_ms_per_image": round(bare_cpu[replicas, threads, best], 1),
        "embed_service_cpu_ms_per_image": round(served_cpu, 1),
        "embed_service_over_bare_cpu": round(bare_cpu[replicas, threads, best] / served_cpu, 3),
    }
