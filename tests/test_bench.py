"""`dogsearch bench --quick` runs end to end and writes the keys the README promises (numbers are for a
benchmark, not a test: only their presence and sanity are checked here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dogsearch.bench import vector


@pytest.mark.real_model
@pytest.mark.timeout(1200)
def test_quick_bench_writes_every_key(tmp_path):
    out = tmp_path / "bench.json"
    # the CNN: the keys are what is tested, and the default ViT's forwards would make this test minutes longer
    env = dict(os.environ, DOGSEARCH_EMBEDDER_MODEL="efficientnet_lite0")
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--quick", "--json", "--out", str(out)],
                         capture_output=True, text=True, timeout=1100, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(run.stdout.strip().splitlines()[-1]) == result
    for key in ("embed_service_over_bare", "search_p50_ms_10_users", "search_p95_ms_10_users",
                "search_errors_10_users", "search_throughput_saturated", "vector_p95_ms_10k",
                "vector_recall@10_10k", "peak_rss_mb", "ingest_worker_over_bare", "ingest_celery_worker_over_bare",
                "pose_ms_per_photo", "watches_check_matrix_ms_10000", "watches_check_per_watch_over_matrix_10000",
                "watches_ingest_10000_over_0", "watches_ingest_check_share_10000", "ranking_expanded_over_plain",
                "ranking_judged_by_part_over_plain", "ranking_reranked_over_plain",
                "ranking_expanded_reranked_over_plain", "ranking_plain_over_bare"):
        assert isinstance(result[key], int | float), key
    assert result["search_errors_10_users"] == 0 and result["embed_service_errors"] == 0
    assert result["embed_service_over_bare"] > 0 and result["vector_recall@10_10k"] > 0.9
    assert result["ranking_expanded_first_same_share"] == 1.0  # two neighbours never change the first dog


VECTOR_KEYS = ("p50_ms", "p95_ms", "recall@10", "exact_p95_ms", "upsert_per_s", "optimize_s", "restart_s",
               "rss_bytes_per_vector", "anon_bytes_per_vector", "disk_bytes_per_vector", "wal_bytes_per_vector",
               *(f"filter_{name}_{what}" for name in ("breed", "breed_rare", "seen_at", "geo")
                 for what in ("p95_ms", "recall@10")))


@pytest.mark.real_model
@pytest.mark.timeout(900)
def test_the_vector_bench_at_a_chosen_size(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, DOGSEARCH_EMBEDDER_MODEL="efficientnet_lite0")
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--only", "vector", "--quick",
                          "--vectors", "1500", "--json", "--out", str(out)],
                         capture_output=True, text=True, timeout=850, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["vector_n_1500"] == 1500 and not any(key.endswith("_10k") for key in result)
    for store in ("vector", "vector_int8"):
        for key in VECTOR_KEYS:
            value = result[f"{store}_{key}_1500"]
            # memory differences at 1,500 vectors are noise of either sign; the rest are times, rates and shares
            assert isinstance(value, int | float) and (value >= 0 or "bytes" in key), (store, key, value)
        assert result[f"{store}_recall@10_1500"] > 0.9
        assert [row["hnsw_ef"] for row in result[f"{store}_ef_sweep_1500"]] == list(vector.EF_SWEEP)
        assert result[f"{store}_disk_bytes_per_vector_1500"] > 4 * 384 * 0.5  # float32 vectors are on disk
    for key in ("p95", "rss", "disk", "optimize"):
        assert result[f"vector_int8_{key}_over_bare_1500"] > 0, key


def test_the_vector_bench_refuses_a_size_too_small_to_measure():
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--only", "vector", "--vectors", "10"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "--vectors is at least 100" in run.stderr


def test_the_bench_vectors_blend_real_ones_and_are_not_copies():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((20, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    out = vector.blends(base, 2000, rng)
    assert out.shape == (2000, 384) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)
    similarity = out @ out.T
    np.fill_diagonal(similarity, -1)
    assert similarity.max() < 0.99  # no two stored vectors are (near) copies, though only 20 real ones made them
    nearest_real = (out @ base.T).max(axis=1)
    assert 0.6 < nearest_real.min() and nearest_real.max() < 0.99  # near a real embedding, never one


def test_size_suffixes():
    assert [vector.suffix(n) for n in (10_000, 100_000, 1_000_000, 1500, 2_000_000)] == [
        "10k", "100k", "1m", "1500", "2m"]


def test_exact_answers_match_brute_force_across_slices():
    rng = np.random.default_rng(1)
    base = rng.standard_normal((30, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    data, queries = vector.blends(base, 60_000, rng), vector.blends(base, 4, rng)  # 2 slices of 50,000
    rows = {"some": [np.sort(rng.choice(60_000, 700, replace=False)) for _ in queries],
            "two": [np.array([3, 55_001]) for _ in queries]}
    truth, by_filter = vector.exact_answers(data, queries, 10, rows)
    scores = data @ queries.T
    for q in range(len(queries)):
        assert truth[q] == {vector.point_uuid(i) for i in np.argsort(-scores[:, q])[:10]}
        some = rows["some"][q]
        assert by_filter["some"][q] == {vector.point_uuid(i) for i in some[np.argsort(-scores[some, q])[:10]]}
        assert by_filter["two"][q] == {vector.point_uuid(3), vector.point_uuid(55_001)}


def test_the_gpu_bench_says_so_where_there_is_no_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--device", "cuda", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no CUDA GPU" in run.stderr and not run.stdout
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--device", "cuda", "--only", "vector"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "choose from ['embed', 'ingest', 'topology', 'search', 'pose']" in run.stderr
    run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--device", "cuda", "--topologies", "8x"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "WORKERSxEMBEDDERS" in run.stderr


def test_topologies_are_workers_by_embedders():
    from dogsearch.bench.gpu import parse_topologies

    assert parse_topologies("4x2,16X8") == ((4, 2), (16, 8))
    for bad in ("", "4", "4x2x1", "0x2", "4x-1", "ax2", "4x2,", "65x1"):
        with pytest.raises(ValueError, match="WORKERSxEMBEDDERS"):
            parse_topologies(bad)


def test_the_gpu_search_gallery_is_topped_up_with_new_dogs_like_the_real_ones(tmp_path):
    """The 100k-dog gallery of the GPU search bench: its real entries stay, each added entry is a dog of its own
    (its cover) with a real entry's other fields and a unit vector between the real ones, never a copy."""
    from dogsearch.bench.gpu import top_up
    from dogsearch.search.contract import Point
    from dogsearch.search.edge import EdgeStore

    rng = np.random.default_rng(0)
    real = rng.standard_normal((20, 16)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    with EdgeStore(tmp_path) as store:
        store.ensure_collection(16, "m@dogcrop-m0.3")
        store.upsert([Point(f"00000000-0000-0000-0000-{i:012d}", v.tolist(),
                            {"dog_id": f"d{i}", "photo_id": f"p{i}", "cover": True, "breed": "beagle", "model": "m"})
                      for i, v in enumerate(real)])
    assert top_up(tmp_path, 500) == 480
    with EdgeStore(tmp_path) as store:
        points, _ = store.scroll(1000, None, None, with_vector=True)
    assert len(points) == 500
    added = [p for p in points if not p.id.startswith("00000000-")]
    assert len(added) == 480 and all(p.payload["dog_id"] == p.id and p.payload["cover"] for p in added)
    assert {p.payload["breed"] for p in added} == {"beagle"} and len({p.payload["photo_id"] for p in added}) == 480
    vectors = np.asarray([p.vector for p in added])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert (vectors @ real.T).max() < 0.9999  # blends with noise, not copies


def test_bench_servers_start_side_by_side_and_one_that_fails_says_why(tmp_path):
    """The GPU bench's topology starts its services together (dogsearch.bench.common.servers): each its own process
    on its own port, all stopped on the way out; a service that cannot start raises with its own error."""
    import httpx

    from dogsearch.bench.common import servers

    with servers((("search", "--data-dir", str(tmp_path / "a")), None),
                 (("search", "--data-dir", str(tmp_path / "b")), None)) as started:
        assert len({url for url, _ in started}) == 2
        assert all(httpx.get(f"{url}/readyz").status_code == 200 for url, _ in started)
        pids = [pid for _, pid in started]
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(RuntimeError, match="invalid settings"):
        with servers((("search", "--data-dir", str(tmp_path / "c")), None),
                     (("embedder",), {"DOGSEARCH_EMBEDDER_PRECISION": "fp17"})):
            pass


def test_the_bench_refuses_to_flush_a_redis_database_it_did_not_fill():
    """The ingest bench flushes its Redis database: one holding anyone else's keys is refused before any benchmark
    runs, and left as it was; an empty one, or one a bench run left (marked), is the bench's."""
    from dogsearch.bench.ingest import BENCH_MARK, claim_redis
    from tests.jobs.servers import REDIS_URL, redis_db

    db = redis_db()
    db.flushdb()
    db.set("someone:else", "1")
    try:
        run = subprocess.run([sys.executable, "-m", "dogsearch.cli", "bench", "--only", "ingest", "--quick",
                              "--redis-url", REDIS_URL], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and f"the Redis database {REDIS_URL} holds 1 keys" in run.stderr
        assert "bench: ingest ..." not in run.stderr
        assert db.get("someone:else") == b"1"
        with pytest.raises(RuntimeError, match="holds 1 keys the bench did not make"):
            claim_redis(REDIS_URL)

        db.delete("someone:else")
        claim_redis(REDIS_URL)  # empty: flushed and marked
        db.set("celery", "a queue a run that died left")
        claim_redis(REDIS_URL)  # marked: the bench's own, flushed again
        assert db.keys() == [BENCH_MARK.encode()]
    finally:
        db.flushdb()
