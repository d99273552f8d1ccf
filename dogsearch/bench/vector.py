"""The store alone: query latency and recall@10 against exact search at 100,000 vectors made of real
embeddings (variations of the sample photos) plus small noise."""
from __future__ import annotations

import io
import tempfile
import time
import uuid

import numpy as np
from PIL import Image

from dogsearch.bench.common import percentile, variations
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.services.embedder.settings import EmbedderSettings


def real_embeddings(n: int) -> tuple[np.ndarray, str]:
    model = EmbedderSettings().build_model()
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data, _ in variations(n, seed=3)]
    return model.embed_images(images), model.model_id


def run(quick: bool = False) -> dict:
    n_points, n_real, n_queries = (10_000, 200, 100) if quick else (100_000, 1_000, 300)
    base, model_id = real_embeddings(n_real)
    rng = np.random.default_rng(0)

    def noisy(count: int) -> np.ndarray:
        picks = base[rng.integers(0, len(base), count)]
        noise = rng.normal(scale=0.3 / np.sqrt(base.shape[1]), size=picks.shape).astype(np.float32)
        out = picks + noise
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    vectors = noisy(n_points)
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-") as tmp, EdgeStore(tmp) as store:
        store.ensure_collection(base.shape[1], model_id)
        start = time.perf_counter()
        for i in range(0, n_points, 2_000):
            store.upsert([Point(id=str(uuid.UUID(int=j + 1)), vector=v.tolist(), payload={})
                          for j, v in enumerate(vectors[i:i + 2_000], start=i)])
        upsert_s = time.perf_counter() - start
        start = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - start

        latencies, exact_latencies, recall = [], [], []
        for q in noisy(n_queries):
            t0 = time.perf_counter()
            approx = store.query(q.tolist(), 10)
            t1 = time.perf_counter()
            exact = store.query(q.tolist(), 10, exact=True)
            t2 = time.perf_counter()
            latencies.append((t1 - t0) * 1000)
            exact_latencies.append((t2 - t1) * 1000)
            recall.append(len({h.id for h in approx} & {h.id for h in exact}) / 10)
    suffix = "10k" if quick else "100k"
    return {
        f"vector_p50_ms_{suffix}": round(percentile(latencies, 50), 2),
        f"vector_p95_ms_{suffix}": round(percentile(latencies, 95), 2),
        f"vector_exact_p95_ms_{suffix}": round(percentile(exact_latencies, 95), 2),
        f"vector_recall@10_{suffix}": round(float(np.mean(recall)), 4),
        f"vector_upsert_per_s_{suffix}": round(n_points / upsert_s),
        f"vector_optimize_s_{suffix}": round(optimize_s, 1),
    }
