"""The docker-compose topology without Docker: gateway, embedder, pose, search, a Celery worker and Redis, each
its own process on loopback ports, configured through the environment as the containers are (the same
variable names as docker-compose.yml). Photos go in through a bulk job on the worker and through an upload,
searches go through real HTTP; then the search service and the worker are killed with SIGKILL and restarted,
and nothing is lost: every dog, every search result, and a job queued while no worker was up."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.processes import Process, free_port, http_ready

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(900)]
SHARED_REDIS = "redis://127.0.0.1:6379/12"  # only when no redis-server binary is here to start one


def celery_ping(broker: str, env: dict[str, str], node: str = "worker@%h") -> Callable[[], bool]:
    # The worker container's healthcheck command (docker/worker.Dockerfile, docker-compose.yml), as it runs there.
    celery = str(Path(sys.executable).parent / "celery")

    def ready() -> bool:
        out = subprocess.run([celery, "-b", broker, "inspect", "ping", "-d", node.replace("%h", socket.gethostname()),
                              "-t", "3"], capture_output=True, text=True, env=env, timeout=30)
        return out.returncode == 0
    return ready


class Topology:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.processes: list[Process] = []
        base = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")}
        redis_server = shutil.which("redis-server")
        if redis_server:
            port = free_port()
            self.broker = f"redis://127.0.0.1:{port}/0"
            self.redis = Process("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                           "--appendonly", "no", "--dir", str(tmp)], base, tmp / "redis.log",
                                 lambda: _redis_pings(port))
        else:
            self.broker, self.redis = SHARED_REDIS, None
            import redis

            redis.Redis.from_url(SHARED_REDIS).flushdb()
        self.urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("gateway", "embedder", "search", "pose")}
        self.imports = tmp / "imports"
        ingest_env = base | {  # docker-compose.yml's x-ingest-env, with loopback URLs and local folders
            "DOGSEARCH_GATEWAY_DATA_DIR": str(tmp / "photos"),
            "DOGSEARCH_GATEWAY_EMBEDDER_URL": self.urls["embedder"],
            "DOGSEARCH_GATEWAY_SEARCH_URL": self.urls["search"],
            "DOGSEARCH_GATEWAY_POSE_URL": self.urls["pose"],
            "DOGSEARCH_BROKER_URL": self.broker,
            "DOGSEARCH_JOBS_DATA_DIR": str(tmp / "jobs"),
            "DOGSEARCH_JOBS_UPLOAD_DIR": str(tmp / "jobs" / "uploads"),
            "DOGSEARCH_JOBS_ALLOWED_ROOTS": f'["{self.imports}"]',
            "DOGSEARCH_JOBS_BATCH_SIZE": "8",
        }
        envs = {
            # the detector off: a photo is one dog, so the counts below are the photos'
            "embedder": base | {"DOGSEARCH_EMBEDDER_CACHE_DIR": str(tmp / "models"),
                                "DOGSEARCH_EMBEDDER_DETECTOR": "none"},
            "search": base | {"DOGSEARCH_SEARCH_DATA_DIR": str(tmp / "vectors")},
            "pose": base,
            "gateway": ingest_env,
        }
        cli = [sys.executable, "-m", "dogsearch.cli"]
        self.services = {
            name: Process(name, [*cli, "serve", name, "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]],
                          envs[name], tmp / f"{name}.log", http_ready(url))
            for name, url in self.urls.items()
        }
        # named as in its container (docker/worker.Dockerfile), which the healthcheck pings
        self.worker = Process("worker", [*cli, "worker", "--pool", "threads", "--concurrency", "2",
                                         "--loglevel", "WARNING", "--name", "worker@%h"],
                              ingest_env, tmp / "worker.log", celery_ping(self.broker, base))

    def start(self) -> None:
        order = ([self.redis] if self.redis else []) + [self.services[n] for n in ("embedder", "search", "pose")]
        for process in order:
            self.processes.append(process.start())
        for process in order:
            process.wait_ready()
        self.processes.append(self.services["gateway"].start().wait_ready())
        self.processes.append(self.worker.start().wait_ready())

    def stop(self) -> None:
        for process in reversed([self.worker, *self.services.values(), *([self.redis] if self.redis else [])]):
            process.stop()


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def topology(tmp_path):
    topology = Topology(tmp_path)
    try:
        topology.start()
        yield topology
    finally:
        topology.stop()


def wait_job(gateway: str, job_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = httpx.get(f"{gateway}/v1/jobs/{job_id}", timeout=10).json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s: {job}"
        time.sleep(0.25)


def all_dogs(gateway: str) -> list[dict]:
    dogs, cursor = [], None
    while True:
        page = httpx.get(f"{gateway}/v1/dogs", params={"limit": 100} | ({"cursor": cursor} if cursor else {}),
                         timeout=30).json()
        dogs += page["items"]
        cursor = page["next"]
        if not cursor:
            return dogs


def search(gateway: str, photo: Path, k: int = 5, **fields: str) -> dict:
    r = httpx.post(f"{gateway}/v1/search", files={"image": (photo.name, photo.read_bytes())},
                   data={"k": str(k), **fields}, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()


def ranked(answer: dict) -> list[tuple[str, float]]:
    return [(hit["id"], round(hit["score"], 4)) for hit in answer["results"]]


def submit(topology: Topology, folder: Path) -> str:
    r = httpx.post(f"{topology.urls['gateway']}/v1/jobs/index", json={"path": str(folder)}, timeout=30)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def test_the_compose_topology_as_processes_loses_nothing_when_services_die(topology: Topology) -> None:
    gateway = topology.urls["gateway"]
    gallery, queries = topology.imports / "gallery", topology.imports / "queries"
    shutil.copytree(SAMPLES / "gallery", gallery)
    shutil.copytree(SAMPLES / "queries", queries)
    query_photos = sorted(queries.rglob("*.jpg"))

    # Bulk: the gallery through a job that the Celery worker process runs (breeds from the folder names).
    job = wait_job(gateway, submit(topology, gallery))
    assert job["state"] == "done", (job, topology.worker.tail())
    assert (job["total"], job["indexed"], job["failed"]) == (40, 40, 0), job
    # One upload through the public API.
    rex = query_photos[0]
    r = httpx.post(f"{gateway}/v1/dogs", files={"image": (rex.name, rex.read_bytes())},
                   data={"name": "Rex", "breed": rex.parent.name}, timeout=60)
    assert r.status_code == 201, r.text
    rex_id = r.json()["id"]
    assert len(all_dogs(gateway)) == 41

    # Search over real HTTP: gallery photos find themselves first, with their breed.
    for photo in sorted(gallery.rglob("*.jpg"))[::10]:
        top = search(gateway, photo, k=1)["results"][0]
        assert top["payload"]["breed"] == photo.parent.name and top["score"] > 0.999
    assert search(gateway, rex, k=1)["results"][0]["id"] == rex_id
    before = search(gateway, query_photos[3], k=5)
    # The pose service, through the gateway.
    r = httpx.post(f"{gateway}/v1/pose", files={"image": (rex.name, rex.read_bytes())}, timeout=120)
    assert r.status_code == 200, (r.text, topology.services["pose"].tail())
    dogs = r.json()["dogs"]
    assert r.json()["width"] > 0 and dogs and len(dogs[0]["keypoints"]) == 17, r.json()

    # The search service dies without a clean shutdown, and comes back: every dog and every result is still there.
    search_service = topology.services["search"]
    search_service.kill()
    r = httpx.post(f"{gateway}/v1/search", files={"image": ("q.jpg", rex.read_bytes())}, timeout=60)
    assert r.status_code == 503 and "search" in r.json()["detail"]
    search_service.start().wait_ready()
    assert ranked(search(gateway, query_photos[3], k=5)) == ranked(before)
    dogs = all_dogs(gateway)
    assert len(dogs) == 41 == len({d["id"] for d in dogs})

    # The worker dies; a job sent meanwhile waits in Redis, and a new worker runs it: the 10 query photos,
    # of which Rex was stored already. Nothing is lost and nothing is stored twice.
    topology.worker.kill()
    job_id = submit(topology, queries)
    time.sleep(1)
    assert httpx.get(f"{gateway}/v1/jobs/{job_id}", timeout=10).json()["state"] == "queued"
    topology.worker.start().wait_ready()
    job = wait_job(gateway, job_id)
    assert job["state"] == "done", (job, topology.worker.tail())
    assert (job["total"], job["indexed"] + job["duplicates"], job["already_stored"], job["failed"]) == (10, 10, 1, 0)
    dogs = all_dogs(gateway)
    assert len(dogs) == 50 == len({d["id"] for d in dogs})
    for photo in query_photos[1:3]:
        assert search(gateway, photo, k=1)["results"][0]["score"] > 0.999
