"""A model service whose model failed to load at start comes up by itself once its weights are there, as real
processes behind a balancer that routes by /readyz (which is then all they get): each probe after the back-off
tries again, and says meanwhile why it is not ready and when it tries next; its 503s say when in Retry-After, and the
gateway's too (the ASGI apps)."""
from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from dogsearch.models import weights as W
from dogsearch.models.pose.lite_fpn import DEFAULT_WEIGHTS_DIR
from dogsearch.services.allinone import create_all_in_one
from dogsearch.services.embedder.app import create_app as create_embedder
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.pose.app import create_app as create_pose
from dogsearch.services.pose.settings import PoseSettings
from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import RED
from tests.images import solid
from tests.processes import Process, free_port

RETRY = {"LOAD_RETRY_S": "0.5", "LOAD_RETRY_MAX_S": "1"}


def service(name: str, tmp_path: Path, **env: str) -> Process:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    prefix = f"DOGSEARCH_{name.upper()}_"
    full_env = dict(os.environ) | {prefix + key: value for key, value in (RETRY | env).items()}
    cmd = [sys.executable, "-m", "dogsearch.cli", "serve", name, "--host", "127.0.0.1", "--port", str(port)]
    return Process(name, cmd, full_env, tmp_path / f"{name}.log", lambda: True, url=url)


def readiness(process: Process, until, timeout: float = 120) -> dict:
    """The first /readyz answer (its body, and its status as `http`) that `until` accepts."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, f"{process.name} exited: {process.tail()}"
        try:
            response = httpx.get(f"{process.url}/readyz", timeout=5)
            seen = {**response.json(), "http": response.status_code}
            if until(seen):
                return seen
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{process.name}: last /readyz {seen} after {timeout}s: {process.tail()}")


def failed(answer: dict) -> bool:
    return answer["http"] == 503 and "failed to load" in answer.get("reason", "")


def test_an_embedder_whose_weights_file_appears_after_its_start_becomes_ready(tmp_path):
    weights = tmp_path / "weights" / "lite0.pth"
    embedder = service("embedder", tmp_path, MODEL="efficientnet_lite0", WEIGHTS_PATH=str(weights),
                       RUNTIME="torch", DETECTOR="none", PRELOAD="true").start()
    try:
        answer = readiness(embedder, failed)
        assert str(weights) in answer["reason"] and "does not exist" in answer["reason"]  # loudly, which file
        assert "next try in" in answer["reason"] or "trying again now" in answer["reason"]
        weights.parent.mkdir()
        shutil.copyfile(W.package_weights_file(), weights.with_suffix(".part"))
        weights.with_suffix(".part").rename(weights)  # as a replica filling a shared cache does
        readiness(embedder, lambda a: a["http"] == 200)
        info = httpx.get(f"{embedder.url}/v1/info", timeout=10).json()
        assert info["model"] == "tf_efficientnet_lite0.imagenet-pkg"
    finally:
        embedder.stop()


@pytest.mark.parametrize("broken", ["missing", "checksum"])
def test_a_pose_service_whose_weights_fail_at_start_becomes_ready_once_they_are_whole(tmp_path, broken):
    folder = tmp_path / "pose-weights"
    if broken == "checksum":
        shutil.copytree(DEFAULT_WEIGHTS_DIR, folder)
        (folder / "head.safetensors").write_bytes(b"half written")
    pose = service("pose", tmp_path, WEIGHTS_DIR=str(folder), DETECTOR="whole-image", RUNTIME="torch",
                   PRELOAD="true").start()
    try:
        answer = readiness(pose, failed)
        assert ("config.json" if broken == "missing" else "head.safetensors") in answer["reason"]
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(DEFAULT_WEIGHTS_DIR, folder)
        readiness(pose, lambda a: a["http"] == 200)
    finally:
        pose.stop()


# The ASGI apps, a back-off long enough that Retry-After tells it from the 1 s of a full queue.
BACK_OFF = {"load_retry_s": 60, "load_retry_max_s": 600}


def missing_embedder(tmp_path: Path) -> EmbedderSettings:
    return EmbedderSettings(model="efficientnet_lite0", weights_path=str(tmp_path / "none" / "lite0.pth"),
                            runtime="torch", detector="none", **BACK_OFF)


def missing_pose(tmp_path: Path) -> PoseSettings:
    return PoseSettings(weights_dir=str(tmp_path / "none"), detector="whole-image", runtime="torch", **BACK_OFF)


def waits(answer: httpx.Response) -> int:
    """A 503's Retry-After."""
    assert answer.status_code == 503, answer.text
    return int(answer.headers["retry-after"])


async def test_a_model_backing_off_says_when_it_is_tried_again_in_retry_after(tmp_path):
    """A 503 for a model whose load failed says how long until the next try (ceil, at least 1), the first answer
    (whose request tried) and the ones after it (which wait out the back-off) alike: asked sooner, it only fails
    again. The embedder and the pose service."""
    photo = ("d.png", solid(RED, fmt="PNG"))
    for app, path, field in [(create_embedder(missing_embedder(tmp_path)), "/v1/embed", "images"),
                             (create_pose(missing_pose(tmp_path)), "/v1/pose", "image")]:
        async with serving(app) as client:
            first, then = [await client.post(path, files={field: photo}) for _ in range(2)]
        assert "next try in" in then.json()["detail"]
        assert 1 < waits(then) <= waits(first) <= 60


async def test_the_gateway_passes_a_model_s_back_off_on_in_its_retry_after(tmp_path, fake_model):
    """The gateway's 503 for an embedder (a search) or pose service (a pose) that is backing off says the upstream's
    Retry-After, not 1."""
    photo = {"image": ("d.png", solid(RED, fmt="PNG"))}
    embedder_down = create_all_in_one(tmp_path / "a", embedder_settings=missing_embedder(tmp_path))
    pose_down = fake_all_in_one(tmp_path / "b", fake_model, pose_settings=missing_pose(tmp_path))
    async with serving(embedder_down) as client:
        searched = await client.post("/v1/search", files=photo)
    async with serving(pose_down) as client:
        posed = await client.post("/v1/pose", files=photo)
    assert "embedder" in searched.json()["detail"] and 1 < waits(searched) <= 60
    assert "pose" in posed.json()["detail"] and 1 < waits(posed) <= 60
