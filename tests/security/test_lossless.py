"""Nothing lost, attacked on real processes: the upsert whose answer never comes (the search process frozen while
it holds the request, then thawed, then the gateway restarted), the same photo uploaded many times at once, and a
photo folder on a full disk (a tiny tmpfs, where this runs as root)."""
from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from dogsearch.gallery.records import photo_id, sha256_hex
from tests.images import solid
from tests.processes import free_port


def noise_jpeg(seed: int, side: int = 256) -> bytes:
    """A photo that does not compress (tens of KB): fills a small disk quickly."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    return out.getvalue()


def add(url: str, data: bytes, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{url}/v1/dogs", files={"image": ("dog.jpg", data)}, timeout=timeout)


class FreezingProxy:
    """A TCP proxy from the gateway to the search service that freezes the search process (SIGSTOP) just before
    it hands on an upsert: the request reaches the frozen process, its answer cannot come back in time. Reads
    (the gateway's look after the failure) reach the frozen process too, and time out as well."""

    def __init__(self, upstream_port: int, search_pid: int) -> None:
        self.upstream_port, self.search_pid = upstream_port, search_pid
        self.port = free_port()
        self.armed = threading.Event()
        self.froze = threading.Event()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        started.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def to_search() -> None:
            while chunk := await reader.read(65536):
                if self.armed.is_set() and b"PUT /v1/points " in chunk:
                    self.armed.clear()
                    os.kill(self.search_pid, signal.SIGSTOP)
                    self.froze.set()
                up_writer.write(chunk)
                await up_writer.drain()
            # The gateway gave up: keep the search side open, so the frozen process still reads the whole request.

        async def to_gateway() -> None:
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()
            writer.close()

        await asyncio.gather(to_search(), to_gateway(), return_exceptions=True)

    def close(self) -> None:
        async def shut() -> None:
            self.server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def split(start_server, tmp_path):
    """The embedder, the search service and the gateway as three processes; the gateway reaches search through a
    FreezingProxy and gives up on a call after 2 s."""
    embedder = start_server("embedder", data_dir=tmp_path / "unused")
    search = start_server("search", data_dir=tmp_path / "vectors")
    proxy = FreezingProxy(int(search.url.rsplit(":", 1)[1]), search.proc.pid)

    def gateway():
        return start_server("gateway", "--embedder-url", embedder.url, "--search-url", f"http://127.0.0.1:{proxy.port}",
                            data_dir=tmp_path / "photos", env={"DOGSEARCH_GATEWAY_UPSTREAM_TIMEOUT_S": "2"})

    try:
        yield search, proxy, gateway
    finally:
        if search.proc.poll() is None:
            os.kill(search.proc.pid, signal.SIGCONT)
        proxy.close()


def whole(url: str, dog: str) -> bool:
    """True: the dog and its photo; False: neither. A dog without its photo fails the test."""
    status = httpx.get(f"{url}/v1/dogs/{dog}", timeout=10).status_code
    assert status in (200, 404), status
    found = status == 200
    if found:
        image = httpx.get(f"{url}/v1/dogs/{dog}/image", timeout=10)
        assert image.status_code == 200, f"dog {dog} is stored but its photo is gone: {image.text}"
    return found


def test_an_upsert_whose_answer_never_comes_loses_no_photo_across_a_restart(split, tmp_path):
    search, proxy, start_gateway = split
    gateway = start_gateway()
    assert add(gateway.url, solid((20, 200, 40))).status_code == 201  # the collection exists: the next is an upsert
    photo = noise_jpeg(1)
    dog = photo_id(sha256_hex(photo))

    proxy.armed.set()
    answer = add(gateway.url, photo)
    assert proxy.froze.is_set()
    assert answer.status_code in (503, 504), answer.text  # the outcome is unknown: not a 201, not a 500
    os.kill(search.proc.pid, signal.SIGCONT)  # the frozen process wakes up and applies the upsert it holds

    gateway.kill()  # and the gateway restarts
    gateway = start_gateway()
    assert whole(gateway.url, dog)  # was: the dog stored, its photo deleted by the failed call: 404 for good
    again = add(gateway.url, photo)
    assert again.status_code == 200 and again.json()["id"] == dog
    assert httpx.get(f"{gateway.url}/v1/dogs/{dog}/image", timeout=10).content == photo


def test_an_upsert_lost_with_the_search_process_leaves_nothing_that_a_retry_does_not_complete(split, tmp_path):
    search, proxy, start_gateway = split
    gateway = start_gateway()
    assert add(gateway.url, solid((20, 200, 40))).status_code == 201
    photo = noise_jpeg(2)
    dog = photo_id(sha256_hex(photo))

    proxy.armed.set()
    assert add(gateway.url, photo).status_code in (503, 504)
    search.kill()  # killed while frozen: the upsert it held is never applied
    search.start().wait_ready()
    proxy.search_pid = search.proc.pid
    assert not whole(gateway.url, dog)  # nothing stored; its photo file is kept until a look can tell
    retry = add(gateway.url, photo)
    assert retry.status_code == 201, retry.text
    assert whole(gateway.url, dog)
    check = subprocess.run(
        [sys.executable, "-m", "dogsearch.cli", "check", "--search-url", search.url, "--photos",
         str(tmp_path / "photos"), "--data-dir", str(tmp_path / "unused"), "--repair", "--grace-s", "0"],
        capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 without their photo" in check.stdout and "0 orphan photo files" in check.stdout


def test_many_uploads_of_one_photo_at_once_make_one_dog(start_server):
    server = start_server()
    photo = noise_jpeg(3)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/dogs", files={"image": ("d.jpg", photo)})
                                          for _ in range(8)))

    answers = asyncio.run(burst())
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]  # was: several 201s for one photo
    assert {a.json()["id"] for a in answers} == {photo_id(sha256_hex(photo))}
    assert httpx.get(f"{server.url}/v1/dogs", timeout=10).json()["total"] == 1
    assert whole(server.url, photo_id(sha256_hex(photo)))


@pytest.fixture
def tiny_photo_disk(tmp_path):
    """The all-in-one data folder whose photos/ is a 192 KiB tmpfs (root only)."""
    photos = tmp_path / "data" / "photos"
    photos.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(photos)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        yield photos
    finally:
        if subprocess.run(["umount", str(photos)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(photos)], check=True)


def test_a_full_photo_disk_answers_507_and_stores_nothing_half(start_server, tiny_photo_disk: Path):
    server = start_server(data_dir=tiny_photo_disk.parent)
    stored, full = [], None
    for seed in range(20):
        answer = add(server.url, noise_jpeg(100 + seed))
        if answer.status_code != 201:
            full = answer
            break
        stored.append(answer.json()["id"])
    assert full is not None, "the disk never filled up"
    assert full.status_code == 507, full.text  # was: 500
    assert full.json()["code"] == "storage_full" and "disk is full" in full.json()["detail"]
    assert not [p for p in tiny_photo_disk.rglob(".tmp-*")]  # no half-written file
    assert httpx.get(f"{server.url}/v1/dogs", timeout=10).json()["total"] == len(stored)  # no entry without photo
    for dog in stored:
        assert whole(server.url, dog)
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200  # the server goes on


@pytest.fixture
def small_vector_disk(tmp_path):
    """The all-in-one data folder whose vectors/ is a 128 MiB tmpfs (root only): room for the empty collection (its
    payload indexes take some 35 MiB) above the store's 64 MiB floor."""
    vectors = tmp_path / "data" / "vectors"
    vectors.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(vectors)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        yield vectors
    finally:
        if subprocess.run(["umount", str(vectors)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(vectors)], check=True)


def test_a_full_vector_disk_answers_507_and_leaves_no_photo_behind(start_server, small_vector_disk: Path):
    # Filled to under the store's floor, the embedded engine would hang in its write-ahead log: the write is refused.
    server = start_server(data_dir=small_vector_disk.parent)
    first = add(server.url, noise_jpeg(1))
    assert first.status_code == 201, first.text
    filler = small_vector_disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (os.statvfs(small_vector_disk).f_bavail * os.statvfs(small_vector_disk).f_frsize - (8 << 20)))
    full = add(server.url, noise_jpeg(2))
    assert full.status_code == 507, full.text
    assert full.json()["code"] == "store_full" and "disk is full" in full.json()["detail"]
    assert "/vectors" not in full.json()["detail"]  # no server path
    assert httpx.get(f"{server.url}/v1/dogs", timeout=10).json()["total"] == 1
    photos = small_vector_disk.parent / "photos"
    assert len([p for p in photos.rglob("*") if p.is_file() and photo_id(sha256_hex(noise_jpeg(2))) in p.name]) == 0
    assert whole(server.url, first.json()["id"])
    filler.unlink()  # room again: the same upload goes through
    again = add(server.url, noise_jpeg(2))
    assert again.status_code == 201, again.text
    assert whole(server.url, again.json()["id"])
