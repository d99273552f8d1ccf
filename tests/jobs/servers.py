"""Test plumbing for jobs: the embedder and search apps served over real HTTP from a thread of the test process
(so that Celery workers, in this process or another, reach them as they reach real services), a Redis db of
the tests' own or a redis-server of a test's own (to kill), and `dogsearch worker` processes."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
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
    """An ASGI app on a loopback port (`port`: the one a stopped server had), run by uvicorn on a thread of its
    own."""

    def __init__(self, app, port: int | None = None) -> None:
        self.port = port or free_port()
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
        self.model, self.detector, self.vectors = model, detector, data_dir / "vectors"
        self.embedder, self.search = Served(self._embedder()), Served(self._search())

    def _embedder(self):
        return create_embedder(EmbedderSettings(max_batch=256, batch_max_size=8,
                                                **({} if self.detector else {"detector": "none"})),
                               **fake_image_models(self.model))

    def _search(self):
        return create_search(SearchSettings(data_dir=self.vectors))

    def stop(self, service: str) -> None:
        """`service` ("embedder" or "search") goes away (a redeploy): its port refuses connections until
        restart(service)."""
        getattr(self, service).__exit__(None, None, None)

    def restart(self, service: str) -> None:
        app = {"embedder": self._embedder, "search": self._search}[service]()
        setattr(self, service, Served(app, getattr(self, service).port).__enter__())

    def __enter__(self) -> Backends:
        self.embedder.__enter__()
        self.search.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.embedder.__exit__(*exc)
        self.search.__exit__(*exc)


class RedisServer:
    """A redis-server of the test's own on a free port, persisting as production does (appendonly), that the test
    may kill (SIGKILL) and start again on the same port and data."""

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server): a test of its own needs it")
        data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.log = free_port(), data_dir / "redis.log"
        self.cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                    "--dir", str(data_dir)]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.exceptions.BusyLoadingError):
                assert time.monotonic() < deadline and self.proc.poll() is None, self.log.read_text()[-2000:]
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.kill()


def worker_environment(jobs, gateway, **settings: str) -> dict[str, str]:
    """The environment of a `dogsearch worker` process for these jobs and gateway settings (and `settings`, more
    DOGSEARCH_* variables), none of the test process's own DOGSEARCH_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")}
    env.update({
        "DOGSEARCH_BROKER_URL": jobs.broker_url,
        "DOGSEARCH_JOBS_BATCH_SIZE": str(jobs.batch_size),
        "DOGSEARCH_JOBS_VISIBILITY_TIMEOUT_S": str(jobs.visibility_timeout_s),
        "DOGSEARCH_GATEWAY_EMBEDDER_URL": gateway.embedder_url,
        "DOGSEARCH_GATEWAY_SEARCH_URL": gateway.search_url,
        "DOGSEARCH_GATEWAY_DATA_DIR": str(gateway.data_dir),
        **settings,
    })
    return env


class WorkerProcess:
    """`dogsearch worker` (or `module`, another entry point taking its arguments) as a process of its own."""

    def __init__(self, env: dict[str, str], log, module: tuple[str, ...] = ("dogsearch.cli", "worker"),
                 concurrency: int = 1) -> None:
        self.env, self.log, self.module, self.concurrency = env, log, module, concurrency
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        cmd = [sys.executable, "-m", *self.module, "--concurrency", str(self.concurrency), "--loglevel", "WARNING"]
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     start_new_session=True)
        return self

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the batch at hand
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
