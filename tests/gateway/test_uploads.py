"""The gateway's uploads as a client sees them: photos wait for their share of the memory budget (then 503), and a
zip's form is read by the route itself (into the uploads folder) and refused as FastAPI's parsing refused it."""
from __future__ import annotations

import asyncio
import shutil

import pytest

from dogsearch.services.gateway import deps
from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import RED, search
from tests.images import solid
from tests.jobs.test_embedded import make_zip

MiB = 1024 * 1024


@pytest.fixture
def app(tmp_path):
    return fake_all_in_one(tmp_path / "data", jobs_options={"broker_url": None},
                           gateway_options={"upload_memory_bytes": 1024 * 1024})


async def test_a_photo_waits_for_the_budget_then_is_answered_503(app, monkeypatch):
    monkeypatch.setattr(deps, "UPLOAD_WAIT_S", 0.3)
    async with serving(app) as client:
        budget = app.state.parts.uploads
        with budget.reserve(budget.total):  # other requests' photos hold all of it
            r = await search(client, solid(RED))
            assert r.status_code == 503 and r.json()["code"] == "uploads_busy", r.text
            assert r.headers["Retry-After"] == "1"
        assert budget.used == 0
        held = budget.reserve(budget.total)
        held.__enter__()
        asyncio.get_running_loop().call_later(0.1, held.__exit__, None, None, None)  # given back while it waits
        assert (await search(client, solid(RED))).status_code == 200
        assert budget.used == 0  # its own share given back once answered


async def test_the_zip_form_is_checked_and_nothing_of_a_refused_one_is_left(app, tmp_path):
    uploads = tmp_path / "data" / "jobs" / "uploads"
    archive = ("x.zip", make_zip({"a.jpg": b"x"}))
    async with serving(app) as client:
        post = lambda **kw: client.post("/v1/jobs/index/upload", **kw)  # noqa: E731
        r = await post(files={"archive": archive}, data={"labels": "breeds"})
        assert (r.status_code, r.json()["detail"]) == (422, "labels: one of folders, dogs, csv, not 'breeds'")
        r = await post(files={"zip": archive})
        assert (r.status_code, r.json()["detail"]) == (422, "archive: a zip file is required")
        r = await post(files=[("archive", archive), ("archive", archive)])
        assert r.status_code == 413 and "Too many files" in r.json()["detail"], r.text
        r = await post(json={"archive": "x"})
        assert r.status_code == 415, r.text
        r = await post(files={"archive": ("x.zip", b"")})
        assert (r.status_code, r.json()["detail"]) == (422, "empty archive: zero bytes")
        assert list(uploads.iterdir()) == []


async def test_a_zip_of_unknown_length_is_refused_once_it_would_cross_the_disk_floor(tmp_path):
    floor = shutil.disk_usage(tmp_path).free - 16 * MiB
    app = fake_all_in_one(tmp_path / "data", jobs_options={"broker_url": None, "min_free_bytes": floor})

    async def body():  # chunked: no Content-Length to reserve at once
        yield b'--xx\r\nContent-Disposition: form-data; name="archive"; filename="a.zip"\r\n\r\nPK\x03\x04'
        for _ in range(64):
            yield b"\0" * MiB

    async with serving(app) as client:
        r = await client.post("/v1/jobs/index/upload", content=body(),
                              headers={"Content-Type": "multipart/form-data; boundary=xx"})
        assert r.status_code == 413, r.text
        assert r.json()["detail"] == "not enough free disk space to receive the archive: try again later"
    assert list((tmp_path / "data" / "jobs" / "uploads").iterdir()) == []
