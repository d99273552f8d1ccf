"""Pieces the benchmarks share: real photos and their variations, a server in its own process, percentiles."""
from __future__ import annotations

import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from dogsearch.core.paths import SAMPLES

SMALL = (120, 240)  # the width of benchmark photos by default, px (from, to)


def sample_photos() -> list[Path]:
    return sorted((SAMPLES / "gallery").rglob("*.jpg")) + sorted((SAMPLES / "queries").rglob("*.jpg"))


def variation(photo: Image.Image, rng: random.Random, width: tuple[int, int] = SMALL) -> bytes:
    """Another photo of the same dog, as far as a benchmark cares: a random crop, maybe mirrored, other light
    and colour, another size and JPEG quality. Every variation has other bytes, so each is a new dog."""
    w, h = photo.size
    scale = rng.uniform(0.6, 1.0)
    cw, ch = int(w * scale), int(h * scale)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    im = photo.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        im = ImageOps.mirror(im)
    im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.7, 1.3))
    im = ImageEnhance.Color(im).enhance(rng.uniform(0.6, 1.4))
    side = rng.randint(*width)
    im = im.resize((side, max(32, int(side * ch / cw))))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=rng.randint(70, 95))
    return buf.getvalue()


def variations(n: int, seed: int = 0, width: tuple[int, int] = SMALL) -> Iterator[tuple[bytes, str]]:
    """n photos made from the sample photos, `width` pixels wide (from, to): (jpeg bytes, breed of the photo it
    came from)."""
    rng = random.Random(seed)
    photos = [(Image.open(p).convert("RGB"), p.parent.name) for p in sample_photos()]
    for i in range(n):
        photo, breed = photos[i % len(photos)]
        yield variation(photo, rng, width), breed


def forward_images_per_s(forward: Callable, batches: Sequence, replicas: int,
                         torch_threads: int | None) -> tuple[float, float]:
    """(images/s, CPU ms per image) of `forward` over `batches` run on `replicas` threads of `torch_threads`
    intra-op threads each, the way the services run a model (dogsearch.inference.runner.inference_pool), with no
    batcher, HTTP or decoding around it. The CPU is the whole process's: nothing else should run in it meanwhile."""
    from dogsearch.inference.runner import inference_pool

    pool = inference_pool("bare", replicas, torch_threads)
    try:
        list(pool.map(forward, [batches[i % len(batches)] for i in range(2 * replicas)]))  # warm-up: allocations
        images = sum(len(b) for b in batches)
        cpu, start = cpu_seconds(), time.perf_counter()
        list(pool.map(forward, batches))
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
        return images / seconds, 1000 * cpu / images
    finally:
        pool.shutdown()


def cpu_seconds() -> float:
    """CPU time this process has used so far (user + system, all its threads)."""
    times = os.times()
    return times.user + times.system


def process_cpu_seconds(pid: int) -> float:
    """CPU time another process has used so far (user + system, all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def forward_layouts(settings) -> list[tuple[int, int]]:
    """(replicas, threads) to measure the bare forward with: the service's own, and one team of all cores."""
    from dogsearch.core.settings import usable_cores

    return sorted({(settings.replicas, settings.torch_threads), (1, usable_cores())})


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# Below Linux's ephemeral range (32768-60999), from which outgoing connections take their local ports: a port that
# bind(0) handed out and that was let go until a server binds it could be taken by one meanwhile.
FREE_PORTS = range(20000, 32768)
_handed_out: set[int] = set()  # never twice in one process, though not yet bound


def free_port() -> int:
    """A loopback port nothing is bound to, for a server about to start (picked at random: runs side by side on one
    machine seldom pick the same, and one that did finds it taken and picks again)."""
    for _ in range(200):
        port = random.choice(FREE_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free loopback port in {FREE_PORTS.start}-{FREE_PORTS.stop - 1}")


@contextmanager
def server(*args: str, env: dict[str, str] | None = None, ready_timeout: float = 180) -> Iterator[tuple[str, int]]:
    """`dogsearch serve ARGS` in its own process on a free loopback port: (base url, pid). A server that exits
    or never gets ready raises with the end of what it wrote to stderr."""
    port = free_port()
    cmd = [sys.executable, "-m", "dogsearch.cli", "serve", *args, "--port", str(port)]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr,
                                env={**os.environ, **(env or {})}, start_new_session=True)

        def failed(why: str) -> RuntimeError:
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 2000))
            return RuntimeError(f"{' '.join(cmd)} {why}: {stderr.read().decode(errors='replace')}")

        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_timeout
            while True:
                if proc.poll() is not None:
                    raise failed(f"exited with {proc.returncode}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise failed(f"not ready after {ready_timeout} s")
                time.sleep(0.2)
            yield url, proc.pid
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def servers(*specs: tuple[tuple[str, ...], dict[str, str] | None]) -> Iterator[list[tuple[str, int]]]:
    """Several `server`s, (args, env) each, started side by side: [(base url, pid)] in the same order."""
    from concurrent.futures import ThreadPoolExecutor

    managers = [server(*args, env=env) for args, env in specs]
    with ExitStack() as stack, ThreadPoolExecutor(max(1, len(managers))) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
        started, failures = [], []
        for manager, future in zip(managers, futures, strict=True):
            try:
                started.append(future.result())
                stack.push(manager.__exit__)
            except Exception as exc:  # noqa: BLE001 - the others are stopped, then the first failure raised
                failures.append(exc)
        if failures:
            raise failures[0]
        yield started


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")
