"""Each service in its own process, real HTTP between them, the real default model: index, search,
kill and restart the search service, and nothing is lost."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.processes import Process, free_port, http_ready

pytestmark = pytest.mark.real_model


def serve(name: str, port: int, log: Path, *args: str) -> Process:
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "dogsearch.cli", "serve", name, "--port", str(port), *args]
    # The detector off: a photo is one dog, so the counts below are the photos' (how many dogs a detector finds in
    # them is its own tests' business).
    env = dict(os.environ) | {"DOGSEARCH_EMBEDDER_DETECTOR": "none"}
    return Process(name, cmd, env, log, http_ready(url), url=url)


@pytest.fixture
def topology(tmp_path):
    embedder = serve("embedder", free_port(), tmp_path / "embedder.log")
    search = serve("search", free_port(), tmp_path / "search.log", "--data-dir", str(tmp_path / "vectors"))
    gateway = serve("gateway", free_port(), tmp_path / "gateway.log", "--data-dir", str(tmp_path / "photos"),
                      "--embedder-url", embedder.url,
                      "--search-url", search.url)
    services = [embedder.start(), search.start(), gateway.start()]
    try:
        for service in services:
            service.wait_ready()
        yield embedder, search, gateway
    finally:
        for service in services:
            service.stop()


def search_file(gateway_url: str, path: Path, k: int = 3) -> dict:
    r = httpx.post(f"{gateway_url}/v1/search", files={"image": (path.name, path.read_bytes())},
                   data={"k": str(k)}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_index_and_search_across_processes_and_survive_a_search_restart(topology):
    _, search, gateway = topology
    out = subprocess.run(
        [sys.executable, "-m", "dogsearch.cli", "index", str(SAMPLES / "gallery"), "--url", gateway.url],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "indexed 40, duplicates 0 (already stored 0), near duplicates 0, failed 0" in out.stdout
    # and each service's /metrics says so
    metrics = {name: httpx.get(f"{service.url}/metrics", timeout=30).text for name, service in
               (("gateway", gateway), ("search", search))}
    assert 'dogsearch_job_photos_total{outcome="indexed"} 40.0' in metrics["gateway"]
    assert "\ndogsearch_search_points 40.0\n" in metrics["search"]

    gallery = sorted((SAMPLES / "gallery").rglob("*.jpg"))
    # A gallery photo finds itself first, with its breed from the folder name.
    for path in gallery[::8]:
        top = search_file(gateway.url, path)["results"][0]
        assert top["payload"]["breed"] == path.parent.name and top["score"] > 0.999
    # A phone's HEIC of a photo (stored sideways with the file's rotation) finds the JPEG of that photo first.
    fixtures = Path(__file__).parent / "fixtures"
    jpeg = (fixtures / "dogs" / "n02088364" / "ILSVRC2012_val_00005922.jpg").read_bytes()
    added = httpx.post(f"{gateway.url}/v1/dogs", files={"image": ("beagle.jpg", jpeg)}, timeout=60)
    assert added.status_code == 201, added.text
    top = search_file(gateway.url, fixtures / "phone" / "beagle.heic")["results"][0]
    assert top["id"] == added.json()["id"] and top["score"] > 0.98, top
    # So does an iPhone's 24 MP HEIC of it (the services' default limits take it).
    top = search_file(gateway.url, fixtures / "phone" / "iphone-24mp.heic")["results"][0]
    assert top["id"] == added.json()["id"] and top["score"] > 0.95, top
    assert httpx.delete(f"{gateway.url}/v1/dogs/{top['id']}", timeout=30).status_code == 204

    query = sorted((SAMPLES / "queries").rglob("*.jpg"))[0]
    before = search_file(gateway.url, query, k=5)["results"]

    search.kill()  # SIGKILL: no clean shutdown
    r = httpx.post(f"{gateway.url}/v1/search", files={"image": ("q.jpg", query.read_bytes())}, timeout=60)
    assert r.status_code == 503 and "search" in r.json()["detail"]
    search.start().wait_ready()

    assert httpx.get(f"{gateway.url}/v1/dogs", timeout=30).json()["total"] == 40
    after = search_file(gateway.url, query, k=5)["results"]
    assert [(h["id"], round(h["score"], 4)) for h in after] == [(h["id"], round(h["score"], 4)) for h in before]

    cli = subprocess.run(
        [sys.executable, "-m", "dogsearch.cli", "search", str(query), "-k", "5", "--json", "--url", gateway.url],
        capture_output=True, text=True, timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert [h["id"] for h in json.loads(cli.stdout)["results"]] == [h["id"] for h in after]


def test_embedder_killed_under_load_gives_503_at_once_and_recovers_by_itself(topology):
    embedder, _, gateway = topology
    photo = sorted((SAMPLES / "gallery").rglob("*.jpg"))[0]
    added = httpx.post(f"{gateway.url}/v1/dogs", files={"image": ("d.jpg", photo.read_bytes())}, timeout=60)
    assert added.status_code == 201

    embedder.kill()
    for _ in range(5):  # every request while it is down: a fast, explicit 503, never a hang or a 500
        r = httpx.post(f"{gateway.url}/v1/search", files={"image": ("q.jpg", photo.read_bytes())}, timeout=10)
        assert r.status_code == 503 and "embedder" in r.json()["detail"]
        assert r.headers["retry-after"] == "1"
    for _ in range(30):  # /readyz keeps its check of the services DOGSEARCH_GATEWAY_READY_CACHE_S (1 s)
        if httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 503:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the gateway stayed ready with its embedder dead")
    # Reads that need no embedder keep working.
    assert httpx.get(f"{gateway.url}/v1/dogs/{added.json()['id']}", timeout=10).status_code == 200

    embedder.start().wait_ready()  # the gateway is not restarted: it reconnects on its own
    gateway.wait_ready()
    hits = search_file(gateway.url, photo)["results"]
    assert hits[0]["id"] == added.json()["id"]
