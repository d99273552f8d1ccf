"""`dogsearch bench --quick` runs end to end and writes the keys the README promises (numbers are for a
benchmark, not a test: only their presence and sanity are checked here)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.real_model


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
                "pose_ms_per_photo"):
        assert isinstance(result[key], int | float), key
    assert result["search_errors_10_users"] == 0 and result["embed_service_errors"] == 0
    assert result["embed_service_over_bare"] > 0 and result["vector_recall@10_10k"] > 0.9
