"""Services started as real processes by the end-to-end tests: free loopback ports, start, wait until ready,
SIGKILL, stop."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from dogsearch.bench.common import free_port  # noqa: F401 (the tests' too: one picker)


class Process:
    """One service process; its stderr goes to a log that failures quote."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path, ready: Callable[[], bool],
                 url: str | None = None):
        self.name, self.cmd, self.env, self.log, self.ready, self.url = name, cmd, env, log, ready, url
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 180) -> Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"{self.name} exited: {self.tail()}"
            if self.ready():
                return self
            time.sleep(0.25)
        raise AssertionError(f"{self.name} not ready after {timeout}s: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False
    return ready
