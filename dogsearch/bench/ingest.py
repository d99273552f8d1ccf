"""Bulk ingestion throughput: one worker's images/s ÷ the bare model forward at the same batch size, on this
machine in the same run (goal ≥ 0.8).

Two workers run the same job code (dogsearch.jobs.work): it reads each file, checks and decodes it, hashes it
(sha256 and dHash), embeds it in batches, writes the photo, and upserts the vectors.
- `ingest_worker_*`: the embedded runner, every service and the job in one process (`dogsearch serve`);
- `ingest_celery_*`: one `dogsearch worker` process on Redis (`--redis-url`, default db 14 of 127.0.0.1:6379,
  flushed: refused unless it is empty or the bench's own; skipped when no Redis answers there) talking HTTP to an
  embedder and a search process, the jobs submitted through a gateway process: the production topology on one
  machine, so all four share its cores.
The bare model only runs forward on tensors made in advance, in each layout of threads (the embedder's own:
`replicas` x `torch_threads`, and one team of all cores); the ratios divide by the faster.
The photos are small by default (120-240 px wide, so the bench measures the job's own overhead); `--megapixels 3`
makes them the size of real photos, which the worker and the embedder each decode shrunk (dogsearch.core.images).

    python -m dogsearch.bench.ingest [--quick] [--json] [--megapixels MP] [--redis-url URL]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import torch

from dogsearch.bench.common import SMALL, cpu_seconds, forward_images_per_s, forward_layouts, variations
from dogsearch.core.images import decode_image
from dogsearch.core.memory import frozen_once_started, tune_malloc
from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.embedder.settings import EmbedderSettings


def _write(folder: Path, n: int, seed: int, width: tuple[int, int] = SMALL) -> list[bytes]:
    photos = []
    for i, (data, breed) in enumerate(variations(n, seed=seed, width=width)):
        (folder / breed).mkdir(parents=True, exist_ok=True)
        (folder / breed / f"{i:05d}.jpg").write_bytes(data)
        photos.append(data)
    return photos


def bare_images_per_s(photos: list[bytes], batch_size: int, settings: EmbedderSettings, replicas: int,
                      torch_threads: int) -> tuple[float, float]:
    """(images/s, CPU ms per image) of the forward alone."""
    if settings.tune_malloc:  # as the embedder does
        tune_malloc()
    model = settings.build_model()
    limits = {"max_bytes": 1 << 30, "max_pixels": 1 << 30, "min_side": model.decode_side}  # as the embedder decodes
    tensors = [model.preprocess(decode_image(p, **limits).image) for p in photos]
    batches = [torch.stack(tensors[i:i + batch_size]) for i in range(0, len(tensors), batch_size)]
    return forward_images_per_s(model.embed, batches, replicas, torch_threads)


def _bare(photos: list[bytes], batch_size: int, settings: EmbedderSettings) -> dict[str, tuple[float, float]]:
    """(images/s, CPU ms per image) of the bare forward in each layout (replicas x threads), each in a process of
    its own, as the runner's model is: torch's thread teams left over from one layout would slow the next."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    rates = {}
    for replicas, threads in forward_layouts(settings):
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            rates[f"{replicas}x{threads}"] = pool.submit(bare_images_per_s, photos, batch_size, settings, replicas,
                                                         threads).result()
    return rates


async def _job_seconds(client: httpx.AsyncClient, folder: Path) -> tuple[float, dict]:
    """Seconds from the job's creation to its end, by the job's own clock (milliseconds): the status is polled only
    4 times a second, as a user's client would, so that the bench's own requests cost the worker next to nothing."""
    job_id = (await client.post("/v1/jobs/index", json={"path": str(folder)})).json()["id"]
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["state"] not in ("queued", "running"):
            seconds = datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])
            return seconds.total_seconds(), job
        await asyncio.sleep(0.25)


def worker_images_per_s(root: Path, data: Path, warm: Path, folder: Path, batch_size: int,
                        settings: EmbedderSettings, model_factory=None,
                        jobs_options: dict | None = None) -> tuple[float, dict, float]:
    """(images/s, the job, CPU seconds the process spent on the job); `jobs_options`: more JobsSettings."""
    from dogsearch.services.allinone import create_all_in_one

    # require_dog off: a variation cropped to 60 % may keep too little of its dog to be found; dogs are still looked
    # for in every photo, as in real use, and every photo is stored, so each run indexes all n
    app = frozen_once_started(create_all_in_one(  # as `dogsearch serve` is
        data, embedder_settings=settings, model_factory=model_factory,
        jobs_options={"broker_url": None, "allowed_roots": [str(root)], "batch_size": batch_size,
                      "require_dog": False} | (jobs_options or {})))

    async def go():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                         timeout=600) as client:
                await _job_seconds(client, warm)  # loads the model, creates the collection
                before = cpu_seconds()
                seconds, job = await _job_seconds(client, folder)
                return seconds, job, cpu_seconds() - before

    seconds, job, cpu = asyncio.run(go())
    return job["indexed"] / seconds, job, cpu


class WithoutForward:
    """The real model's preprocessing and vector size with its forward left out (every vector the same unit
    vector): a job run with it costs what everything around the model costs."""

    def __init__(self, model) -> None:
        self._model = model
        self.model_id, self.dim, self.data_config = model.model_id, model.dim, model.data_config
        self.device, self.precision, self.decode_side = model.device, model.precision, model.decode_side

    def preprocess(self, image):
        return self._model.preprocess(image)

    def embed(self, batch):
        vectors = np.zeros((batch.shape[0], self.dim), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors


BENCH_REDIS = "redis://127.0.0.1:6379/14"  # the default of `dogsearch bench --redis-url`
# Set in a database the bench found empty: a later run (after one that died) may flush it again; nothing else is.
BENCH_MARK = "dogsearch-bench:owned"


def redis_refusal(url: str) -> str | None:
    """Why the bench must not flush the database at `url` (it holds keys the bench did not make), or None: empty,
    the bench's own, or no Redis answering there (the Celery part is then skipped)."""
    import redis

    try:
        client = redis.Redis.from_url(url)
        keys = 0 if client.exists(BENCH_MARK) else client.dbsize()
    except redis.RedisError:
        return None
    if not keys:
        return None
    return (f"the Redis database {url} holds {keys} keys the bench did not make, and the bench flushes the "
            "database it runs its Celery jobs in: give it an empty one (--redis-url redis://HOST:6379/N)")


def claim_redis(url: str):
    """The Redis client of the bench's database, flushed and marked as the bench's; RuntimeError where it holds
    others' keys (redis_refusal), a RedisError where none answers."""
    import redis

    if reason := redis_refusal(url):
        raise RuntimeError(reason)
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.set(BENCH_MARK, "1")
    return client


def celery_images_per_s(root: Path, data: Path, warm: Path, folder: Path, batch_size: int,
                        redis_url: str = BENCH_REDIS) -> tuple[float, dict] | str:
    """(images/s, job) of one Celery worker process, or why it could not run."""
    import os
    import signal
    import subprocess
    import sys

    import redis

    from dogsearch.bench.common import server

    try:
        bench_db = claim_redis(redis_url)
    except redis.RedisError as exc:
        return f"no Redis at {redis_url}: {exc}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")}
    with server("embedder", env=env) as (embedder, _), \
            server("search", "--data-dir", str(data / "vectors"), env=env) as (search, _):
        services = {**env, "DOGSEARCH_BROKER_URL": redis_url, "DOGSEARCH_JOBS_BATCH_SIZE": str(batch_size),
                    "DOGSEARCH_JOBS_REQUIRE_DOG": "false",
                    "DOGSEARCH_JOBS_ALLOWED_ROOTS": json.dumps([str(root)]),
                    "DOGSEARCH_GATEWAY_EMBEDDER_URL": embedder, "DOGSEARCH_GATEWAY_SEARCH_URL": search,
                    "DOGSEARCH_GATEWAY_DATA_DIR": str(data / "photos")}
        worker = subprocess.Popen([sys.executable, "-m", "dogsearch.cli", "worker", "--loglevel", "WARNING"],
                                  env=services, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            with server("gateway", "--data-dir", str(data / "photos"), env=services) as (gateway, _):
                async def go():
                    async with httpx.AsyncClient(base_url=gateway, timeout=600) as client:
                        await _job_seconds(client, warm)  # the worker connects, the collection is made
                        return await _job_seconds(client, folder)

                seconds, job = asyncio.run(go())
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
            bench_db.flushdb()
    return job["indexed"] / seconds, job


def run(quick: bool = False, megapixels: float | None = None, redis_url: str = BENCH_REDIS) -> dict:
    """`megapixels`: photos of about that size instead of small ones (120-240 px wide, the default); `redis_url`:
    the Redis database of the Celery part, flushed (claim_redis)."""
    n, rounds = (96, 1) if quick else (512, 3)
    width = SMALL
    if megapixels:
        side = round((megapixels * 1e6 * 4 / 3) ** 0.5)  # 4:3
        width = (round(side * 0.9), round(side * 1.1))
    batch_size = JobsSettings().batch_size
    settings = EmbedderSettings()
    # A job's batch is one embedder call; the embedder runs it in forwards of at most its batch_max_size.
    forward_batch = min(batch_size, settings.batch_max_size)
    bare, forward_cpu, bare_layouts, worker, worker_cores, celery, skipped = [], [], [], [], [], [], None
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-ingest-") as tmp:
        root = Path(tmp)
        photos = _write(root / "photos", n, seed=1, width=width)
        _write(root / "warm", 8, seed=2)
        # Rounds of bare, embedded runner, Celery worker (each into a new gallery): this machine's speed drifts by
        # 10-20 % between runs, so each side counts its best round.
        for r in range(rounds):
            by_layout = _bare(photos, forward_batch, settings)
            fastest = max(by_layout, key=lambda layout: by_layout[layout][0])
            bare.append(by_layout[fastest][0])
            forward_cpu.append(by_layout[fastest][1])
            bare_layouts.append({layout: rate for layout, (rate, _) in by_layout.items()})
            rate, job, cpu = worker_images_per_s(root, root / f"data-{r}", root / "warm", root / "photos",
                                                 batch_size, settings)
            _check(job, n)
            worker.append(rate)
            worker_cores.append(rate * cpu / n)
            outcome = celery_images_per_s(root, root / f"celery-{r}", root / "warm", root / "photos", batch_size,
                                          redis_url)
            if isinstance(outcome, str):
                skipped = outcome
            else:
                _check(outcome[1], n)
                celery.append(outcome[0])
        model = settings.build_model()
        _, job, cpu = worker_images_per_s(root, root / "without-forward", root / "warm", root / "photos", batch_size,
                                          settings, model_factory=lambda: WithoutForward(model))
        _check(job, n)
    result = {
        "ingest_photos": n,
        "ingest_photo_width_px": list(width),
        "batch_size": batch_size,
        "ingest_forward_batch_size": forward_batch,
        "ingest_rounds": rounds,
        "ingest_bare_images_per_s": round(max(bare), 2),
        "ingest_bare_images_per_s_by_layout": {layout: round(max(r[layout] for r in bare_layouts), 2)
                                               for layout in bare_layouts[0]},
        "ingest_replicas": settings.replicas, "ingest_torch_threads": settings.torch_threads,
        "ingest_worker_images_per_s": round(max(worker), 2),
        "ingest_worker_over_bare": round(max(worker) / max(bare), 3),
        # CPU seconds per second the runner's process used in its best round: under the number of cores, they idled
        "ingest_worker_cores_busy": round(worker_cores[worker.index(max(worker))], 2),
        # The CPU a photo costs in the forward and besides it: where both share the cores, a worker's ratio is at
        # most forward / (forward + besides).
        "ingest_forward_cpu_ms_per_photo": round(min(forward_cpu), 2),
        "ingest_cpu_ms_per_photo_besides_forward": round(1000 * cpu / n, 2),
        "ingest_runs_images_per_s": {"bare": [round(x, 2) for x in bare], "worker": [round(x, 2) for x in worker],
                                     "celery": [round(x, 2) for x in celery]},
    }
    if skipped:
        return {**result, "ingest_celery_skipped": skipped}
    return {**result, "ingest_celery_worker_images_per_s": round(max(celery), 2),
            "ingest_celery_worker_over_bare": round(max(celery) / max(bare), 3)}


def _check(job: dict, n: int) -> None:
    if job["indexed"] != n:
        raise RuntimeError(f"the benchmark job indexed {job['indexed']} of {n} photos: {job}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--megapixels", type=float, help="photos of about this size (default: 120-240 px wide)")
    parser.add_argument("--redis-url", default=BENCH_REDIS,
                        help=f"the Celery part's Redis database, flushed: empty or the bench's (default {BENCH_REDIS})")
    args = parser.parse_args()
    if reason := redis_refusal(args.redis_url):
        raise SystemExit(reason)
    result = run(quick=args.quick, megapixels=args.megapixels, redis_url=args.redis_url)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
