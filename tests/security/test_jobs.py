"""Attacks through the bulk jobs API on a real `dogsearch serve`: reading outside the allowed folders (or /dev/zero)
through a link, a zip that declares millions of entries, fields too large to copy into every point, and a photo
that kills every worker that reads it."""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.jobs.poison_worker import POISON
from tests.jobs.servers import REDIS_URL, redis_db
from tests.security.conftest import peak_rss_mb

PHOTO_LIMIT = 20 * 1024**2  # the gateway's default DOGSEARCH_GATEWAY_MAX_UPLOAD_BYTES


def wait_job(client: httpx.Client, job_id: str, timeout: float = 120, tick=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s: {job}"
        if tick:
            tick()
        time.sleep(0.2)


def dog_count(client: httpx.Client) -> int:
    return len(client.get("/v1/dogs", params={"limit": 100}).json()["items"])


@pytest.fixture
def imports(tmp_path) -> Path:
    """The one folder the server may index, with four photos in it."""
    root = tmp_path / "imports"
    (root / "beagle").mkdir(parents=True)
    for photo in sorted((SAMPLES / "gallery" / "beagle").glob("*.jpg"))[:4]:
        shutil.copy(photo, root / "beagle" / photo.name)
    return root


def serve_env(imports: Path, **more: str) -> dict[str, str]:
    return {"DOGSEARCH_JOBS_ALLOWED_ROOTS": json.dumps([str(imports)]), **more}


def test_links_out_of_the_allowed_folder_and_special_files_are_never_read(start_server, imports, tmp_path):
    # The attacker can write into the import folder (a shared drop folder) but not read the server's files.
    secret = tmp_path / "private" / "owner.jpg"
    secret.parent.mkdir()
    shutil.copy(next((SAMPLES / "gallery" / "dingo").glob("*.jpg")), secret)
    (imports / "secret.jpg").symlink_to(secret)
    (imports / "zero.jpg").symlink_to("/dev/zero")  # read in full, it never ends
    (imports / "private").symlink_to(secret.parent)  # a linked folder out of the root: not walked
    (imports / "beagle" / "again").symlink_to(imports)  # a link loop: the walk ends
    os.mkfifo(imports / "pipe.jpg")  # opened for reading, it waits for a writer forever
    with open(imports / "huge.jpg", "wb") as f:
        f.truncate(3 * 1024**3)  # a sparse 3 GB ".jpg"
    server = start_server(env=serve_env(imports))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # The four photos first: the model's first runs grow the process; what the attack costs is measured after.
        warm_up = client.post("/v1/jobs/index", json={"path": str(imports / "beagle")}).json()["id"]
        assert wait_job(client, warm_up, timeout=60)["indexed"] == 4
        before = peak_rss_mb(server.proc.pid)
        r = client.post("/v1/jobs/index", json={"path": str(imports)})
        assert r.status_code == 202, r.text
        job = wait_job(client, r.json()["id"], timeout=60)
        grew = peak_rss_mb(server.proc.pid) - before
        assert (job["state"], job["already_stored"], job["failed"]) == ("done", 4, 5), job
        assert {e["file"]: e["reason"] for e in job["errors"]} == {
            "secret.jpg": "outside the allowed folders", "zero.jpg": "outside the allowed folders",
            "private": "outside the allowed folders", "pipe.jpg": "not a regular file",
            "huge.jpg": f"file too large: {3 * 1024**3} bytes, limit {PHOTO_LIMIT}"}
        assert str(tmp_path) not in json.dumps(job["errors"]) + str(job["error"])
        assert dog_count(client) == 4
        assert grew < 50, f"the server's peak RSS grew by {grew:.0f} MiB during the job"


def test_a_manifest_linked_out_of_the_allowed_folder_or_a_fifo_is_never_read(start_server, imports, tmp_path):
    # labels.csv linked to a server file was read: its first line came back in the refusal (/etc/shadow's root
    # line), and one with a 'path' column was read as the job's manifest. A FIFO given as the manifest held a
    # gateway thread until a writer came: a few of them stopped every search.
    private = tmp_path / "private"
    private.mkdir()
    (private / "shadow").write_text("root:$6$SECRET:20228:0:99999:7:::\n")
    (private / "rows.csv").write_text("path,notes\nbeagle/x.jpg,SECRET-ROW\n")
    for name, target in (("leak", "shadow"), ("rows", "rows.csv")):
        (imports / name).mkdir()
        (imports / name / "labels.csv").symlink_to(private / target)
    os.mkfifo(imports / "pipe.csv")
    server = start_server(env=serve_env(imports))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for name in ("leak", "rows"):
            r = client.post("/v1/jobs/index", json={"path": str(imports / name), "labels": "csv"})
            assert r.status_code == 403 and "outside the allowed folders" in r.json()["detail"], r.text
            assert "SECRET" not in r.text and str(tmp_path) not in r.text
        for _ in range(3):  # answered at once, each: no thread waits for a writer
            r = client.post("/v1/jobs/index", json={"path": str(imports / "pipe.csv")})
            assert r.status_code == 422 and r.json()["detail"] == "pipe.csv: not a regular file", r.text
        assert client.get("/v1/dogs").status_code == 200
        assert client.get("/v1/jobs").json()["items"] == []


def zip_declaring(entries: int) -> bytes:
    """A small zip whose end records (classic and Zip64) declare `entries` entries: zipfile would go on to parse a
    central directory that large; the server must refuse it from the count alone."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.jpg", b"x")
    data = bytearray(buf.getvalue())
    eocd = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12:eocd + 20])
    record = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, eocd, 1)
    classic = data[eocd:eocd + 22]
    classic[8:12] = struct.pack("<HH", 0xFFFF, 0xFFFF)
    return bytes(data[:eocd] + record + locator + classic)


def test_a_zip_with_too_many_entries_is_refused_before_its_directory_is_parsed(start_server, imports):
    server = start_server(env=serve_env(imports, DOGSEARCH_JOBS_MAX_ARCHIVE_FILES="1000"))
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/v1/jobs/index/upload", files={"archive": ("x.zip", zip_declaring(50_000_000))})
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == "too many entries in the archive: 50000000, limit 1000"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n in range(1500):
                zf.writestr(f"d/{n}.jpg", b"")
        r = client.post("/v1/jobs/index/upload", files={"archive": ("x.zip", buf.getvalue())})
        assert r.status_code == 413 and "too many entries" in r.json()["detail"], r.text
        assert client.get("/v1/jobs").json()["items"] == []


def test_fields_too_large_to_copy_into_every_point_are_refused(start_server, imports):
    server = start_server(env=serve_env(imports))
    huge = {"note": "x" * 100_000}  # today: copied into every point and every batch message
    (imports / "labels.csv").write_text(f"path,note\nbeagle/{next((imports / 'beagle').iterdir()).name},"
                                        f"{'x' * 100_000}\n")
    (imports / "wide.jsonl").write_text(json.dumps({"path": "beagle/x.jpg", **{f"c{n}": 1 for n in range(500)}}))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = client.post("/v1/jobs/index", json={"path": str(imports), "payload": huge})
        assert r.status_code == 413 and "fields too large" in r.json()["detail"], r.text
        r = client.post("/v1/jobs/index", json={"path": str(imports), "labels": "csv"})
        assert r.status_code == 413 and "limit 4096" in r.json()["detail"], r.text
        r = client.post("/v1/jobs/index", json={"path": str(imports / "wide.jsonl")})
        assert r.status_code == 413 and "501 columns, limit 64" in r.json()["detail"], r.text
        assert client.get("/v1/jobs").json()["items"] == []


def test_a_photo_that_kills_every_worker_fails_after_three_deliveries(start_server, imports, tmp_path):
    """Multi-process: `dogsearch serve` with a broker, and Celery workers (other processes) reaching its embedder
    and search service at /internal/*. Without a bound the batch would come back forever, killing each worker."""
    redis = redis_db()
    redis.flushdb()
    (imports / "poison.jpg").write_bytes(b"\xff\xd8\xff" + POISON)
    data = tmp_path / "data"
    server = start_server(data_dir=data, env=serve_env(imports, DOGSEARCH_BROKER_URL=REDIS_URL,
                                                       DOGSEARCH_JOBS_VISIBILITY_TIMEOUT_S="3"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGSEARCH_")} | {
        "DOGSEARCH_BROKER_URL": REDIS_URL, "DOGSEARCH_JOBS_VISIBILITY_TIMEOUT_S": "3",
        "DOGSEARCH_JOBS_MAX_DELIVERIES": "3",
        "DOGSEARCH_GATEWAY_EMBEDDER_URL": f"{server.url}/internal/embedder",
        "DOGSEARCH_GATEWAY_SEARCH_URL": f"{server.url}/internal/search",
        "DOGSEARCH_GATEWAY_DATA_DIR": str(data / "photos"),
    }
    log = tmp_path / "workers.log"
    workers: list[subprocess.Popen] = []

    def keep_a_worker() -> None:  # as a supervisor (compose's restart policy) would
        if not workers or workers[-1].poll() is not None:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tests.jobs.poison_worker", "--concurrency", "1", "--loglevel", "WARNING"],
                env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), start_new_session=True))

    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            r = client.post("/v1/jobs/index", json={"path": str(imports)})
            assert r.status_code == 202, r.text
            job = wait_job(client, r.json()["id"], timeout=150, tick=keep_a_worker)
            assert [w.returncode for w in workers[:-1]] == [70, 70, 70], log.read_text()[-3000:]
            # The five files were one batch: they fail together, with the reason, and the job ends.
            assert (job["state"], job["total"], job["failed"]) == ("done", 5, 5), job
            assert {e["reason"] for e in job["errors"]} == {"this batch stopped the worker 3 times"}
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
        redis.flushdb()
        redis.close()
