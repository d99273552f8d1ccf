"""A model service whose model failed to load at start comes up by itself once its weights are there, as real
processes behind a balancer that routes by /readyz (which is then all they get): each probe after the back-off
tries again, and says meanwhile why it is not ready and when it tries next."""
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
