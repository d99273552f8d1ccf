"""A worker logs as the gateway's settings say: compose hands the workers the gateway's .env, and an operator who
sets DOGSEARCH_GATEWAY_LOG_LEVEL / _LOG_FORMAT there expects the workers to follow (they logged INFO in JSON
whatever it said: `dogsearch worker` took only its --loglevel flag, which the image's command does not pass)."""
from __future__ import annotations

import os
import sys
import uuid

from tests.jobs.servers import REDIS_URL
from tests.processes import Process
from tests.test_e2e_topology import celery_ping


def test_a_worker_logs_at_the_level_and_in_the_format_of_the_gateways_settings(tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")}
    name = f"logs-{uuid.uuid4().hex[:8]}@%h"
    env = base | {"DOGSEARCH_BROKER_URL": REDIS_URL, "DOGSEARCH_GATEWAY_DATA_DIR": str(tmp_path / "photos"),
                  # nothing listens on the discard port: the worker warns and starts anyway
                  "DOGSEARCH_GATEWAY_EMBEDDER_URL": "http://127.0.0.1:9", "DOGSEARCH_GATEWAY_SEARCH_URL": "http://127.0.0.1:9",
                  "DOGSEARCH_GATEWAY_LOG_LEVEL": "WARNING", "DOGSEARCH_GATEWAY_LOG_FORMAT": "text"}
    worker = Process("worker", [sys.executable, "-m", "dogsearch.cli", "worker", "--concurrency", "1", "--name", name],
                     env, tmp_path / "worker.log", celery_ping(REDIS_URL, base, name))
    try:
        worker.start().wait_ready(120)  # connected to Redis: its INFO lines would have been logged by now
    finally:
        worker.stop()
    log = worker.tail()
    assert " WARNING dogsearch.worker the embedder service at http://127.0.0.1:9 does not answer" in log, log
    assert '{"ts"' not in log and "Connected to" not in log and " ready." not in log, log
