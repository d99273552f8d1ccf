"""The store alone, at N vectors (100,000 by default; `dogsearch bench --only vector --vectors 1000000`): query
latency and recall@10 against exact search, with float32 vectors (the bare store: the engine's defaults) and with
scalar int8 quantisation (rescored with the float32 vectors), memory and disk per vector, upsert, index build and
restart time, and filtered search with payload indexes.

The vectors are real-like: real embeddings of variations of the sample photos, each stored vector a blend of two of
them (mostly one: weight 0.5–1) plus Gaussian noise (cosine ≈ 0.95 to the blend), so they fill the space between
the real embeddings rather than sitting in tight clusters of near-copies of a few hundred vectors. The queries are
fresh draws of the same recipe (never stored). Recall@10 is against exact top 10 computed with numpy (cosine, the
same filter applied), over the same stored vectors.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import io
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import qdrant_edge as qe
from PIL import Image

from dogsearch.bench.common import percentile, variations
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.services.embedder.settings import EmbedderSettings

DEFAULT_VECTORS, QUICK_VECTORS = 100_000, 10_000
# The stores measured: the engine's float32 vectors (today's store), and int8 scalar quantisation.
STORES = {"bare": "none", "int8": "int8"}
EF_SWEEP = (64, 128, 256)  # HNSW search breadths measured besides the store's default
N_BREEDS, RARE_BREED, RARE_SHARE = 100, "breed-rare", 1e-4
SEEN_FROM = datetime(2026, 1, 1, tzinfo=UTC)
SEEN_DAYS, WINDOW_DAYS = 365, 30  # seen_at spreads over a year; a filter asks for 30 days of it
BOX = ((47.0, 55.0), (6.0, 15.0))  # location: lat, lon ranges (about Germany)
RADIUS_KM = 50.0
EARTH_KM = 6371.0
INDEXES = {"breed": "keyword", "seen_at": "datetime", "location": "geo"}
BATCH = 2_000


def real_embeddings(n: int) -> tuple[np.ndarray, str]:
    model = EmbedderSettings().build_model()
    images = [Image.open(io.BytesIO(data)).convert("RGB") for data, _ in variations(n, seed=3)]
    return model.embed_images(images), model.model_id


def suffix(n: int) -> str:
    """The keys' size suffix: 10k, 100k, 1m; 2500 for sizes that are not whole thousands."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def blends(base: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` unit vectors: w·a + (1-w)·b of two random real embeddings a, b (w in 0.5–1) plus noise."""
    out = np.empty((count, base.shape[1]), dtype=np.float32)
    for i in range(0, count, 100_000):  # in chunks: the temporaries of 1M rows would take GBs
        m = min(100_000, count - i)
        w = rng.uniform(0.5, 1.0, size=(m, 1)).astype(np.float32)
        mix = w * base[rng.integers(0, len(base), m)] + (1 - w) * base[rng.integers(0, len(base), m)]
        mix /= np.linalg.norm(mix, axis=1, keepdims=True)
        mix += rng.normal(scale=0.3 / np.sqrt(base.shape[1]), size=mix.shape).astype(np.float32)
        out[i:i + m] = mix / np.linalg.norm(mix, axis=1, keepdims=True)
    return out


class Payloads:
    """The payload fields of N points as arrays (to compute the exact answers of filters) and as dicts."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.breed = rng.integers(0, N_BREEDS, n)
        rare = rng.choice(n, size=max(1, round(n * RARE_SHARE)), replace=False)
        self.breed[rare] = -1
        self.seen_s = rng.integers(0, SEEN_DAYS * 86_400, n)
        self.lat = np.round(rng.uniform(*BOX[0], n), 5)
        self.lon = np.round(rng.uniform(*BOX[1], n), 5)

    def payload(self, i: int) -> dict:
        breed = RARE_BREED if self.breed[i] < 0 else f"breed-{self.breed[i]:02d}"
        seen = (SEEN_FROM + timedelta(seconds=int(self.seen_s[i]))).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"breed": breed, "seen_at": seen, "location": {"lat": float(self.lat[i]), "lon": float(self.lon[i])}}


def point_uuid(i: int) -> str:
    return str(uuid.UUID(int=i + 1))


def rss_bytes(field: str = "VmRSS") -> int:
    """Resident memory: VmRSS all of it, RssAnon the part that is no file's (memory-mapped files' pages are
    page cache the kernel can drop and read again; anonymous memory stays)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def settle() -> None:
    """Free what the bench's earlier work left (Python garbage, and glibc's freed heap, which it keeps otherwise),
    so a later difference of resident memory is the store's."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    time.sleep(1)  # the engine's own threads let go of their buffers when they wind down


def disk_bytes(path: Path) -> tuple[int, int]:
    """(bytes on disk under path, of which the write-ahead log's), from allocated blocks (sparse files count less)."""
    total = wal = 0
    for root, _, files in os.walk(path):
        for name in files:
            size = os.stat(os.path.join(root, name)).st_blocks * 512
            total += size
            wal += size if "wal" in Path(root).relative_to(path).parts else 0
    return total, wal


def exact_answers(vectors: np.ndarray, queries: np.ndarray, k: int,
                  row_sets: dict[str, list[np.ndarray]]) -> tuple[list[set[str]], dict[str, list[set[str]]]]:
    """Each query's exact top k ids by cosine (the vectors are unit) among all vectors, and for each name of
    `row_sets` among that query's rows only (sorted indices). One pass over the vectors, in slices: at 1M the
    scores of all queries at once, or a copy of each filter's rows, would take GBs."""
    best = [[] for _ in queries]
    case_best = {name: [[] for _ in queries] for name in row_sets}
    for a in range(0, len(vectors), 50_000):
        scores = vectors[a:a + 50_000] @ queries.T
        for q in range(len(queries)):
            best[q].append(_top(scores[:, q], np.arange(a, a + len(scores)), k))
            for name, rows in row_sets.items():
                r = rows[q][np.searchsorted(rows[q], a):np.searchsorted(rows[q], a + len(scores))]
                case_best[name][q].append(_top(scores[r - a, q], r, k))

    def ids(parts: list[tuple[np.ndarray, np.ndarray]]) -> set[str]:
        s, i = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return {point_uuid(int(j)) for j in i[np.argsort(-s, kind="stable")[:k]]}

    return [ids(b) for b in best], {name: [ids(b) for b in per_q] for name, per_q in case_best.items()}


def _top(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    top = np.argpartition(-scores, k)[:k] if len(scores) > k else np.arange(len(scores))
    return scores[top], rows[top]


def haversine_km(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    p1, p2 = np.radians(lat), math.radians(lat0)
    a = np.sin((p1 - p2) / 2) ** 2 + np.cos(p1) * math.cos(p2) * np.sin(np.radians(lon - lon0) / 2) ** 2
    return 2 * EARTH_KM * np.arcsin(np.sqrt(a))


def filter_cases(pay: Payloads, n_queries: int, rng: np.random.Generator) -> dict[str, list[tuple]]:
    """name -> per query (engine filter, rows it matches): a common breed, the rare breed, a 30-day window of
    seen_at, a 50 km radius of location."""
    cases: dict[str, list[tuple]] = {"breed": [], "breed_rare": [], "seen_at": [], "geo": []}
    rare_rows = np.flatnonzero(pay.breed < 0)
    for _ in range(n_queries):
        b = int(rng.integers(0, N_BREEDS))
        cases["breed"].append(({"breed": f"breed-{b:02d}"}, np.flatnonzero(pay.breed == b)))
        cases["breed_rare"].append(({"breed": RARE_BREED}, rare_rows))
        start = int(rng.integers(0, (SEEN_DAYS - WINDOW_DAYS) * 86_400))
        end = start + WINDOW_DAYS * 86_400
        iso = [(SEEN_FROM + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ") for s in (start, end)]
        cases["seen_at"].append((qe.FieldCondition("seen_at", range=qe.RangeDateTime(gte=iso[0], lte=iso[1])),
                                 np.flatnonzero((pay.seen_s >= start) & (pay.seen_s <= end))))
        lat0, lon0 = rng.uniform(BOX[0][0] + 1, BOX[0][1] - 1), rng.uniform(BOX[1][0] + 1, BOX[1][1] - 1)
        centre = qe.GeoPoint(lon=float(lon0), lat=float(lat0))
        cases["geo"].append((qe.FieldCondition("location", geo_radius=qe.GeoRadius(centre, RADIUS_KM * 1000)),
                             np.flatnonzero(haversine_km(pay.lat, pay.lon, lat0, lon0) <= RADIUS_KM)))
    return cases


def engine_query(store: EdgeStore, vector: np.ndarray, condition) -> set[str]:
    """A query with a filter the store's JSON filters cannot say yet (a datetime range, a geo radius), straight on
    the engine with the parameters EdgeStore.query() sends for them (ACORN)."""
    with store._engine() as shard:
        request = qe.QueryRequest(limit=10, query=qe.Query.Nearest(vector.tolist()), filter=qe.Filter(must=[condition]),
                                  params=store.search_params(acorn=True), with_payload=True, with_vector=False)
        return {str(s.id) for s in shard.query(request)}


def timed(queries: np.ndarray, ask: Callable[[int, np.ndarray], set[str]],
          truth: list[set[str]]) -> dict[str, float]:
    """p50/p95 ms and mean recall@10 of ask(query index, vector) over the queries."""
    latencies, recall = [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        got = ask(i, q)
        latencies.append((time.perf_counter() - t0) * 1000)
        recall.append(len(got & truth[i]) / max(1, min(10, len(truth[i]))))
    return {"p50_ms": round(percentile(latencies, 50), 2), "p95_ms": round(percentile(latencies, 95), 2),
            "recall@10": round(float(np.mean(recall)), 4)}


def log(message: str) -> None:
    print(f"bench vector {datetime.now(UTC):%H:%M:%S}: {message}", file=sys.stderr, flush=True)


def measure_store(kind: str, quantization: str, tmp: Path, vectors: np.ndarray, pay: Payloads, model_id: str,
                  queries: np.ndarray, truth: list[set[str]], cases: dict[str, list[tuple]],
                  case_truth: dict[str, list[set[str]]], n_exact: int) -> dict:
    n = len(vectors)
    out: dict = {}
    with EdgeStore(tmp, quantization=quantization) as store:
        store.ensure_collection(vectors.shape[1], model_id, INDEXES)
        start = time.perf_counter()
        for i in range(0, n, BATCH):
            store.upsert([Point(id=point_uuid(j), vector=v.tolist(), payload=pay.payload(j))
                          for j, v in enumerate(vectors[i:i + BATCH], start=i)])
        out["upsert_per_s"] = round(n / (time.perf_counter() - start))
        log(f"{kind}: upserted {n} ({out['upsert_per_s']}/s); optimizing")
        start = time.perf_counter()
        store.optimize()
        out["optimize_s"] = round(time.perf_counter() - start, 1)
        log(f"{kind}: optimized in {out['optimize_s']} s")

    # Restart: what the search service does before /readyz answers 200 (open the store, read the collection), up to
    # the first answered query. The files were just written, so the page cache is warm: a cold disk adds its reads.
    settle()
    rss_before, anon_before = rss_bytes(), rss_bytes("RssAnon")
    start = time.perf_counter()
    with EdgeStore(tmp, quantization=quantization) as store:
        store.query(queries[0].tolist(), 10)
        out["restart_s"] = round(time.perf_counter() - start, 2)
        for q in queries[:20]:  # warm-up
            store.query(q.tolist(), 10)
        out["default"] = timed(queries, lambda i, q: {h.id for h in store.query(q.tolist(), 10)}, truth)
        log(f"{kind}: {out['default']}")
        exact = []
        for q in queries[:n_exact]:
            t0 = time.perf_counter()
            store.query(q.tolist(), 10, exact=True)
            exact.append((time.perf_counter() - t0) * 1000)
        out["exact_p95_ms"] = round(percentile(exact, 95), 2)
        for name, per_query in cases.items():
            if name.startswith("breed"):
                def ask(i, q, per_query=per_query):
                    return {h.id for h in store.query(q.tolist(), 10, filter=per_query[i][0])}
            else:
                def ask(i, q, per_query=per_query):
                    return engine_query(store, q, per_query[i][0])
            out[f"filter_{name}"] = timed(queries, ask, case_truth[name])
            log(f"{kind}: filter {name}: {out[f'filter_{name}']}")
        out["rss_bytes_per_vector"] = round((rss_bytes() - rss_before) / n, 1)
        out["anon_bytes_per_vector"] = round((rss_bytes("RssAnon") - anon_before) / n, 1)
    out["sweep"] = []
    for ef in EF_SWEEP:  # the search service's DOGSEARCH_SEARCH_HNSW_EF
        with EdgeStore(tmp, quantization=quantization, hnsw_ef=ef) as store:
            for q in queries[:20]:
                store.query(q.tolist(), 10)
            row = timed(queries, lambda i, q: {h.id for h in store.query(q.tolist(), 10)}, truth)
        out["sweep"].append({"hnsw_ef": ef, **row})
        log(f"{kind}: hnsw_ef {ef}: {row}")
    total, wal = disk_bytes(tmp)
    out["disk_bytes_per_vector"] = round(total / n, 1)
    out["wal_bytes_per_vector"] = round(wal / n, 1)
    log(f"{kind}: {out}")
    return out


def run(quick: bool = False, vectors: int | None = None) -> dict:
    n_points = vectors or (QUICK_VECTORS if quick else DEFAULT_VECTORS)
    n_real = 200 if quick else 1_000
    n_queries, n_exact = (100, 20) if quick else (300, 50)
    log(f"{n_points} vectors from {n_real} real embeddings")
    base, model_id = real_embeddings(n_real)
    rng = np.random.default_rng(0)
    data = blends(base, n_points, rng)
    queries = blends(base, n_queries, rng)
    pay = Payloads(n_points, rng)
    cases = filter_cases(pay, n_queries, rng)
    log("exact answers")
    truth, case_truth = exact_answers(data, queries, 10,
                                      {name: [rows for _, rows in per_query] for name, per_query in cases.items()})
    results = {}
    for kind, quantization in STORES.items():
        with tempfile.TemporaryDirectory(prefix="dogsearch-bench-") as tmp:
            results[kind] = measure_store(kind, quantization, Path(tmp), data, pay, model_id, queries, truth,
                                          cases, case_truth, n_exact)
    return flatten(results, n_points)


def flatten(results: dict, n: int) -> dict:
    """The bench's flat keys, suffixed with the size: the bare store's under vector_*, the int8 store's under
    vector_int8_*, and the int8 store over the bare one (…_over_bare)."""
    s = suffix(n)
    out: dict = {f"vector_n_{s}": n}
    for kind, r in results.items():
        p = "vector" if kind == "bare" else f"vector_{kind}"
        out |= {f"{p}_p50_ms_{s}": r["default"]["p50_ms"], f"{p}_p95_ms_{s}": r["default"]["p95_ms"],
                f"{p}_recall@10_{s}": r["default"]["recall@10"], f"{p}_exact_p95_ms_{s}": r["exact_p95_ms"],
                f"{p}_upsert_per_s_{s}": r["upsert_per_s"], f"{p}_optimize_s_{s}": r["optimize_s"],
                f"{p}_restart_s_{s}": r["restart_s"], f"{p}_rss_bytes_per_vector_{s}": r["rss_bytes_per_vector"],
                f"{p}_anon_bytes_per_vector_{s}": r["anon_bytes_per_vector"],
                f"{p}_disk_bytes_per_vector_{s}": r["disk_bytes_per_vector"],
                f"{p}_wal_bytes_per_vector_{s}": r["wal_bytes_per_vector"], f"{p}_ef_sweep_{s}": r["sweep"]}
        for name in ("breed", "breed_rare", "seen_at", "geo"):
            out[f"{p}_filter_{name}_p95_ms_{s}"] = r[f"filter_{name}"]["p95_ms"]
            out[f"{p}_filter_{name}_recall@10_{s}"] = r[f"filter_{name}"]["recall@10"]
    bare = results["bare"]
    for kind, r in results.items():
        if kind == "bare":
            continue
        for key, value, ref in (("p95", r["default"]["p95_ms"], bare["default"]["p95_ms"]),
                                ("rss", r["rss_bytes_per_vector"], bare["rss_bytes_per_vector"]),
                                ("disk", r["disk_bytes_per_vector"], bare["disk_bytes_per_vector"]),
                                ("optimize", r["optimize_s"], bare["optimize_s"])):
            out[f"vector_{kind}_{key}_over_bare_{s}"] = round(value / ref, 3) if ref else None
    return out
