"""Security tests are black-box: each starts a real `dogsearch serve` process and attacks it over HTTP.

The server runs the real (small) ImageNet CNN so that start-up stays quick; what is attacked is the service around
the model, not the model."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.processes import Process, free_port, http_ready

SERVER_MODEL = "efficientnet_lite0"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux: VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """The CPU time the process has used so far, its threads' included (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@pytest.fixture
def start_server(tmp_path) -> Iterator[Callable[..., Process]]:
    """start_server(*serve_args, env={...}, wait=True) -> a running `dogsearch serve` (all services in one process
    unless the args name one) on a free loopback port, its data under tmp_path; stopped at the end of the test."""
    started: list[Process] = []

    def start(*args: str, env: dict[str, str] | None = None, wait: bool = True, port: int | None = None,
              host: str = "127.0.0.1", data_dir: Path | None = None) -> Process:
        port = port or free_port()
        url = f"http://127.0.0.1:{port}"
        data = data_dir or tmp_path / "data"
        cmd = [sys.executable, "-m", "dogsearch.cli", "serve", *args, "--host", host, "--port", str(port),
               "--data-dir", str(data), "--log-format", "text"]
        # the attacks upload patterns, not dogs: the dog detector is off (the whole photo is the dog), as in the
        # other process tests; tests/gateway/test_dogcrop.py covers "no dog found"
        full_env = dict(os.environ) | {"DOGSEARCH_EMBEDDER_MODEL": SERVER_MODEL, "DOGSEARCH_EMBEDDER_DETECTOR": "none",
                                       "DOGSEARCH_POSE_PRELOAD": "false"} | (env or {})
        process = Process(f"serve{len(started)}", cmd, full_env, tmp_path / f"serve{len(started)}.log",
                          http_ready(url), url=url)
        started.append(process.start())
        return process.wait_ready() if wait else process

    yield start
    for process in started:
        process.stop()
