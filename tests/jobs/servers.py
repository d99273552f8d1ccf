"""Test plumbing for jobs: the embedder and search apps served over real HTTP from a thread of the test process
(so that Celery workers, in this process or another, reach them as they reach real services), and a Redis db of
the tests' own."""
from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import redis
import uvicorn

from dogsearch.services.embedder.app import create_app as create_embedder
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.search.app import create_app as create_search
from dogsearch.services.search.settings import SearchSettings
from tests.fakes import ColorGridModel, fake_image_models
from tests.processes import free_port

# db 13 unless DOGSEARCH_TEST_REDIS_DB says otherwise (test runs side by side each take their own).
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('DOGSEARCH_TEST_REDIS_DB', '13')}"


def redis_db() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        raise AssertionError(
            "the jobs tests need a Redis server on 127.0.0.1:6379 (.ci/run starts one: "
            "redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no)") from exc
    return client


class SlowModel(ColorGridModel):
    """The fake model, with time to kill a worker while a job is under way."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def embed(self, batch):
        time.sleep(self.delay_s)
        return super().embed(batch)


class Served:
    """An ASGI app on a loopback port, run by uvicorn on a thread of its own."""

    def __init__(self, app) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "test server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Backends:
    """Embedder (fake model) and search service over HTTP: what workers and the gateway talk to."""

    def __init__(self, data_dir: Path, model: ColorGridModel, detector: bool = False) -> None:
        # the detector off unless asked for: the whole photo is the dog, as the jobs' tests count them; batches of up
        # to 8, which the tests count (on a CPU with onnxruntime the default is one image a run, the cheapest there)
        embedder = create_embedder(EmbedderSettings(max_batch=256, batch_max_size=8,
                                                    **({} if detector else {"detector": "none"})),
                                   **fake_image_models(model))
        search = create_search(SearchSettings(data_dir=data_dir / "vectors"))
        self.embedder, self.search = Served(embedder), Served(search)
        self.model = model

    def __enter__(self) -> Backends:
        self.embedder.__enter__()
        self.search.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.embedder.__exit__(*exc)
        self.search.__exit__(*exc)
