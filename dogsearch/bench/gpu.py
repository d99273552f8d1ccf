"""The benchmarks on a GPU (`dogsearch bench --device cuda`): what a GPU machine serves, each figure beside the bare
model or store on the same machine in the same run.

- embed: the default embedder's bare forward at fp32 / fp16 / bf16 and batch 32-128 (uint8 batches made in advance
  on the CPU, so the copy to the GPU counts, as in the service); then 1, 2 and 4 embedder service processes sharing
  the GPU at the fastest precision, each's dynamic batcher taking up to 128 at a time from clients that send 32
  photos a request; and a lone photo's latency.
- ingest: a bulk job of small photos through the embedded runner (`dogsearch serve`: job, detector, embedder and
  store in one process) with 2 and 8 batches in flight; the same job with the embedding forward left out (what
  the rest costs), and the photos' decoding alone on every core (the CPU's ceiling for any number of workers).
- topology: the same job in the production topology (`TOPOLOGIES`, or `--topologies`): W Celery workers (Redis at
  `--redis-url`, db 14 of 127.0.0.1:6379 by default, flushed: empty or the bench's own) sharing E embedder processes
  on the GPU, a search service and a gateway, each its own process.
- search: the all-in-one server on the GPU against a gallery of `SEARCH_DOGS` dogs: real photos added through
  POST /v1/dogs, then topped up with real-like vectors (dogsearch.bench.vector.blends of the real ones, each with a
  real entry's payload) written to its store while it is stopped; after 3 s of warm-up, 10 and 100 users with 1 s
  think time, then 32 users without.
- pose: the pose pipeline (detector and keypoints) on the GPU, as dogsearch.bench.pose measures it on a CPU.

The GPU's settings go to every process through the environment (DOGSEARCH_EMBEDDER_DEVICE, _POSE_DEVICE, ...)."""
from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from dogsearch.bench.common import sample_photos, server, servers, variations
from dogsearch.bench.embed import lone_image_ms, service_images_per_s
from dogsearch.bench.ingest import BENCH_REDIS
from dogsearch.core.settings import usable_cores

PRECISIONS = ("fp32", "fp16", "bf16")
BATCH_SIZES = (32, 64, 128)
REQUEST_IMAGES = 32  # photos per /v1/embed request from the service bench's clients
SERVICE_BATCH = 128  # the service's dynamic batch on the GPU
SEARCH_DOGS = 100_000
SECTIONS = ("embed", "ingest", "topology", "search", "pose")
TOPOLOGIES = ((4, 2), (8, 4))  # (Celery workers, embedder processes) of the ingest's production topology


def log(message: str) -> None:
    print(f"bench gpu: {message}", file=sys.stderr, flush=True)


def gpu_env(device: str, precision: str) -> dict[str, str]:
    """The settings every service process gets: torch on the GPU, at `precision` for the embedding model."""
    return {"DOGSEARCH_EMBEDDER_DEVICE": device, "DOGSEARCH_EMBEDDER_RUNTIME": "torch",
            "DOGSEARCH_EMBEDDER_PRECISION": precision, "DOGSEARCH_EMBEDDER_BATCH_MAX_SIZE": str(SERVICE_BATCH),
            "DOGSEARCH_POSE_DEVICE": device, "DOGSEARCH_POSE_RUNTIME": "torch"}


def synchronised(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forward_rates(device: str, quick: bool) -> dict[str, dict[str, float]]:
    """Bare forward images/s by precision and batch size: model.embed on uint8 batches made on the CPU."""
    from dogsearch.services.embedder.settings import EmbedderSettings

    rates: dict[str, dict[str, float]] = {}
    tensors = None
    for precision in PRECISIONS:
        model = EmbedderSettings(device=device, runtime="torch", precision=precision).build_model()
        if tensors is None:
            tensors = [model.preprocess(Image.open(p).convert("RGB")) for p in sample_photos()]
        rates[precision] = {}
        for bs in BATCH_SIZES:
            batch = torch.stack([tensors[i % len(tensors)] for i in range(bs)])
            model.embed(batch)  # warm-up: kernels chosen, memory taken
            repeats = max(2, (256 if quick else 2048) // bs)
            synchronised(device)
            start = time.perf_counter()
            for _ in range(repeats):
                model.embed(batch)  # returns a numpy array: each call waits for its batch
            rates[precision][str(bs)] = round(repeats * bs / (time.perf_counter() - start), 1)
        log(f"forward {precision}: {rates[precision]} images/s")
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rates


def embed(device: str, quick: bool) -> dict:
    rates = forward_rates(device, quick)
    precision = max(rates, key=lambda p: max(rates[p].values()))
    best = max(rates[precision].values())
    photos = [data for data, _ in variations(512, seed=4)]
    requests = 16 if quick else 128
    out: dict = {}
    # One service process decodes and batches on one interpreter: several share the GPU the way replicas behind a
    # load balancer would (each with its own CUDA context and copy of the models).
    for processes in (1, 2, 4) if not quick else (1, 2):
        with servers(*[(("embedder",), gpu_env(device, precision))] * processes) as started:
            urls = [url for url, _ in started]
            served, errors = asyncio.run(service_images_per_s(urls, photos, requests * processes,
                                                              concurrency=8 * processes, per_request=REQUEST_IMAGES))
            if processes == 1:
                lone = asyncio.run(lone_image_ms(urls[0], photos, 8 if quick else 32))
        out[f"gpu_embed_service_images_per_s_{processes}_processes"] = round(served, 1)
        out[f"gpu_embed_service_errors_{processes}_processes"] = errors
        log(f"service, {processes} process(es): {served:.0f} images/s ({errors} errors)")
    served = out["gpu_embed_service_images_per_s_1_processes"]
    most = max(v for k, v in out.items() if k.startswith("gpu_embed_service_images_per_s_"))
    log(f"lone photo {lone:.1f} ms")
    return out | {
        "gpu_embed_bare_images_per_s": rates,
        "gpu_embed_precision": precision,
        "gpu_embed_bare_best_images_per_s": best,
        "gpu_embed_service_images_per_s": served,
        "gpu_embed_service_over_bare": round(served / best, 3),
        "gpu_embed_services_over_bare": round(most / best, 3),
        "gpu_embed_service_lone_image_ms": round(lone, 1),
        "gpu_embed_service_batch": SERVICE_BATCH,
        "gpu_embed_request_images": REQUEST_IMAGES,
    }


def decode_rate(paths: list[Path], side: int) -> float:
    """Photos/s of decoding alone (dogsearch.core.images.decode_image, shrunk as the embedder decodes) on a
    thread per core: Pillow's JPEG decoder runs without the GIL."""
    from dogsearch.core.images import decode_image

    def one(path: Path) -> None:
        decode_image(path.read_bytes(), max_bytes=1 << 30, max_pixels=1 << 30, min_side=side).image.load()

    with ThreadPoolExecutor(usable_cores()) as pool:
        list(pool.map(one, paths[:16]))
        start = time.perf_counter()
        list(pool.map(one, paths))
        return len(paths) / (time.perf_counter() - start)


def ingest(device: str, quick: bool, precision: str) -> dict:
    from dogsearch.bench.ingest import WithoutForward, _check, _write, worker_images_per_s
    from dogsearch.services.embedder.settings import EmbedderSettings

    n = 256 if quick else 4096
    settings = EmbedderSettings(device=device, runtime="torch", precision=precision, batch_max_size=SERVICE_BATCH)
    out: dict = {"gpu_ingest_photos": n, "gpu_ingest_batch_size": 64}
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-gpu-ingest-") as tmp:
        root = Path(tmp)
        _write(root / "photos", n, seed=1)
        _write(root / "warm", 8, seed=2)
        paths = sorted((root / "photos").rglob("*.jpg"))
        model = settings.build_model()
        out["gpu_ingest_decode_only_photos_per_s"] = round(decode_rate(paths, model.decode_side), 1)
        # phone photos: 3 MP, which the embedder decodes shrunk (a JPEG's DCT scaling) but still reads whole
        _write(root / "large", 32 if quick else 256, seed=3, width=(1900, 2100))
        large = sorted((root / "large").rglob("*.jpg"))
        out["gpu_ingest_decode_only_photos_per_s_3mp"] = round(decode_rate(large, model.decode_side), 1)
        for concurrency in (2, 8):
            rate, job, _ = worker_images_per_s(root, root / f"data-{concurrency}", root / "warm", root / "photos", 64,
                                               settings, jobs_options={"local_concurrency": concurrency})
            _check(job, n)
            out[f"gpu_ingest_photos_per_s_{concurrency}_in_flight"] = round(rate, 1)
            log(f"ingest, {concurrency} batches in flight: {rate:.0f} photos/s")
        rate, job, _ = worker_images_per_s(root, root / "without-forward", root / "warm", root / "photos", 64, settings,
                                           model_factory=lambda: WithoutForward(model),
                                           jobs_options={"local_concurrency": 8})
        _check(job, n)
        out["gpu_ingest_photos_per_s_without_forward"] = round(rate, 1)
        log(f"ingest without the forward: {rate:.0f} photos/s; decoding alone "
            f"{out['gpu_ingest_decode_only_photos_per_s']:.0f} photos/s on {usable_cores()} cores")

    return out


def topology_rate(device: str, precision: str, root: Path, data: Path, workers: int, embedders: int,
                  redis_url: str) -> float:
    """Photos/s of a job in the production topology: `workers` Celery workers, worker i sending its batches to
    embedder i mod `embedders` (each a process on the GPU), a search service and a gateway."""
    import json
    import signal
    import subprocess

    from dogsearch.bench.ingest import _check, _job_seconds, claim_redis

    bench_db = claim_redis(redis_url)  # no Redis, or others' keys in it: reported as this section's error
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | gpu_env(device, precision)
    specs = [(("embedder",), env)] * embedders + [(("search", "--data-dir", str(data / "vectors")), env)]
    with servers(*specs) as started:
        *embedder_urls, search = [url for url, _ in started]
        services = env | {"DOGSEARCH_BROKER_URL": redis_url, "DOGSEARCH_JOBS_BATCH_SIZE": "64",
                          "DOGSEARCH_JOBS_REQUIRE_DOG": "false",
                          "DOGSEARCH_JOBS_ALLOWED_ROOTS": json.dumps([str(root)]),
                          "DOGSEARCH_GATEWAY_EMBEDDER_URL": embedder_urls[0], "DOGSEARCH_GATEWAY_SEARCH_URL": search,
                          "DOGSEARCH_GATEWAY_DATA_DIR": str(data / "photos")}
        procs = [subprocess.Popen([sys.executable, "-m", "dogsearch.cli", "worker", "--loglevel", "WARNING"],
                                  env=services | {"DOGSEARCH_GATEWAY_EMBEDDER_URL": embedder_urls[i % embedders]},
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                 for i in range(workers)]
        try:
            with server("gateway", "--data-dir", str(data / "photos"), env=services) as (gateway, _):
                async def go() -> tuple[float, dict]:
                    async with httpx.AsyncClient(base_url=gateway, timeout=600) as client:
                        await _job_seconds(client, root / "warm")  # the workers connect, the collection is made
                        return await _job_seconds(client, root / "photos")

                seconds, job = asyncio.run(go())
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            bench_db.flushdb()
    _check(job, len(list((root / "photos").rglob("*.jpg"))))
    return job["indexed"] / seconds


def parse_topologies(text: str) -> tuple[tuple[int, int], ...]:
    """"4x2,8x4" -> ((4, 2), (8, 4)): Celery workers x embedder processes, each at least 1."""
    try:
        shapes = tuple(tuple(int(n) for n in part.lower().split("x")) for part in text.split(","))
    except ValueError:
        shapes = ()
    if not shapes or any(len(s) != 2 or min(s) < 1 or max(s) > 64 for s in shapes):
        raise ValueError(f"expected WORKERSxEMBEDDERS[,...] with 1 to 64 of each, got {text!r}")
    return shapes


def topology(device: str, quick: bool, precision: str, shapes: tuple[tuple[int, int], ...] | None = None,
             redis_url: str = BENCH_REDIS) -> dict:
    """The ingest's production topology (`shapes`, default `TOPOLOGIES`), on the same photos as the ingest
    section."""
    n = 256 if quick else 4096
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-gpu-topology-") as tmp:
        from dogsearch.bench.ingest import _write

        root = Path(tmp)
        _write(root / "photos", n, seed=1)
        _write(root / "warm", 8, seed=2)
        for workers, embedders in shapes or (TOPOLOGIES[:1] if quick else TOPOLOGIES):
            rate = topology_rate(device, precision, root, root / f"data-{workers}x{embedders}", workers, embedders,
                                 redis_url)
            out[f"gpu_ingest_photos_per_s_{workers}_workers_{embedders}_embedders"] = round(rate, 1)
            log(f"ingest, {workers} Celery workers, {embedders} embedder processes: {rate:.0f} photos/s")
    return out


async def _add(url: str, n: int, concurrency: int = 16) -> float:
    photos = variations(n, seed=1)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def worker() -> None:
            for data, breed in photos:
                r = await client.post("/v1/dogs", files={"image": ("p.jpg", data)}, data={"breed": breed})
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - start)


def top_up(vectors_dir: Path, dogs: int, seed: int = 0) -> int:
    """Fills the stopped server's store up to `dogs` entries: blends of its real vectors, each with a real entry's
    payload as a new dog of its own. Returns how many were added."""
    from dogsearch.bench.vector import blends
    from dogsearch.search.contract import Point
    from dogsearch.search.edge import EdgeStore

    rng = np.random.default_rng(seed)
    with EdgeStore(vectors_dir) as store:
        real, _ = store.scroll(10_000, None, None, with_vector=True)
        base = np.asarray([p.vector for p in real], dtype=np.float32)
        todo = dogs - store.count()
        made = blends(base, todo, rng)
        for i in range(0, todo, 2000):
            points = []
            for v in made[i:i + 2000]:
                entry = str(uuid.uuid4())
                template = real[int(rng.integers(len(real)))].payload
                points.append(Point(entry, v.tolist(), {**template, "dog_id": entry, "photo_id": uuid.uuid4().hex,
                                                        "cover": True}))
            store.upsert(points)
        store.optimize()
        return todo


def search(device: str, quick: bool, precision: str) -> dict:
    from dogsearch.bench.search import users

    dogs, real = (2_000, 200) if quick else (SEARCH_DOGS, 1_000)
    seconds = 8 if quick else 20
    queries = [data for data, _ in variations(100, seed=2)]
    env = gpu_env(device, precision) | {"DOGSEARCH_GATEWAY_REQUIRE_DOG": "false"}
    out: dict = {"gpu_search_dogs": dogs, "gpu_search_real_photos": real}
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-gpu-search-") as tmp:
        with server("--data-dir", tmp, "--log-format", "text", env=env) as (url, _):
            out["gpu_search_add_photos_per_s"] = round(asyncio.run(_add(url, real)), 1)
        start = time.perf_counter()
        top_up(Path(tmp) / "vectors", dogs)
        out["gpu_search_top_up_s"] = round(time.perf_counter() - start, 1)
        log(f"gallery of {dogs} dogs ready ({out['gpu_search_top_up_s']} s to top up and index)")
        with server("--data-dir", tmp, "--log-format", "text", env=env) as (url, _):
            # first searches load the lazy parts and meet each batch shape for the first time: not counted
            asyncio.run(users(url, queries, n_users=32, seconds=3, think_s=0))
            for n_users in (10, 100):
                r = asyncio.run(users(url, queries, n_users=n_users, seconds=seconds, think_s=1.0))
                out |= {f"gpu_search_p50_ms_{n_users}_users": round(r["p50"], 1),
                        f"gpu_search_p95_ms_{n_users}_users": round(r["p95"], 1),
                        f"gpu_search_per_s_{n_users}_users": round(r["per_s"], 1),
                        f"gpu_search_errors_{n_users}_users": r["errors"]}
                log(f"{n_users} users: p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, {r['per_s']:.0f}/s")
            r = asyncio.run(users(url, queries, n_users=32, seconds=seconds / 2, think_s=0))
            out |= {"gpu_search_saturated_per_s": round(r["per_s"], 1), "gpu_search_saturated_errors": r["errors"],
                    "gpu_search_saturated_p50_ms": round(r["p50"], 1)}
    return out


def pose(device: str, quick: bool) -> dict:
    from dogsearch.bench import pose as cpu_pose

    os.environ.update({"DOGSEARCH_POSE_DEVICE": device, "DOGSEARCH_POSE_RUNTIME": "torch"})
    return {f"gpu_{k}": v for k, v in cpu_pose.run(quick).items()}


def run(quick: bool = False, device: str = "cuda", sections: list[str] | None = None,
        topologies: tuple[tuple[int, int], ...] | None = None, redis_url: str = BENCH_REDIS) -> dict:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"--device {device}: torch sees no CUDA GPU on this machine")
    result: dict = {"gpu_device": torch.cuda.get_device_name(device) if device.startswith("cuda") else device}
    precision = "fp16" if device.startswith("cuda") else "fp32"
    for section in sections or SECTIONS:
        if section not in SECTIONS:
            raise ValueError(f"unknown GPU benchmark {section!r}: choose from {SECTIONS}")
        start = time.perf_counter()
        log(f"{section} ...")
        try:
            if section == "embed":
                result |= embed(device, quick)
                precision = result["gpu_embed_precision"]
            elif section == "ingest":
                result |= ingest(device, quick, precision)
            elif section == "topology":
                result |= topology(device, quick, precision, topologies, redis_url)
            elif section == "search":
                result |= search(device, quick, precision)
            else:
                result |= pose(device, quick)
        except Exception as exc:  # noqa: BLE001 - a GPU lease is short: the other sections still run and report
            log(f"{section} failed: {exc!r}")
            result[f"gpu_{section}_error"] = repr(exc)
        result[f"gpu_{section}_seconds"] = round(time.perf_counter() - start, 1)
    return result
