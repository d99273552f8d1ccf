"""Jobs through Redis and a real Celery worker started in this process (threads pool)."""
from __future__ import annotations

import io

import celery.contrib.testing.tasks  # noqa: F401  (the ping task start_worker expects)
import pytest
from celery.contrib.testing.worker import start_worker
from PIL import Image

from dogsearch.services.worker import worker_celery
from tests.jobs.helpers import all_dogs, job_photo_totals, wait_job


@pytest.fixture
def worker(settings):
    jobs, gateway = settings
    app = worker_celery(jobs, gateway)
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False, shutdown_timeout=20):
        yield app


def recompressed(path, scale: float = 0.5, quality: int = 60) -> bytes:
    im = Image.open(path).convert("RGB")
    im = im.resize((int(im.width * scale), int(im.height * scale)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


async def test_a_folder_is_indexed_once_with_duplicates_near_duplicates_and_failures(
        celery_gateway, worker, photos, model):
    originals = sorted(photos.rglob("*.jpg"))
    extra = photos / "extra"
    extra.mkdir()
    (extra / "same-bytes.jpg").write_bytes(originals[0].read_bytes())
    (extra / "smaller.jpg").write_bytes(recompressed(originals[1]))
    (extra / "broken.jpg").write_bytes(originals[2].read_bytes()[:300])
    (extra / "notes.png").write_bytes(b"this is text, not a PNG")

    r = await celery_gateway.post("/v1/jobs/index", json={"path": str(photos), "payload": {"shelter": "north"}})
    assert r.status_code == 202, r.text
    job = await wait_job(celery_gateway, r.json()["id"])

    assert job["state"] == "done", job
    assert (job["total"], job["indexed"], job["duplicates"], job["failed"]) == (44, 41, 1, 2), job
    assert job["near_duplicates"] == 1 and job["already_stored"] == 0
    assert sorted(e["file"] for e in job["errors"]) == ["extra/broken.jpg", "extra/notes.png"]
    assert all(e["reason"] for e in job["errors"])
    assert job["images_per_s"] > 0 and job["started_at"] and job["finished_at"]

    dogs = await all_dogs(celery_gateway)
    assert len(dogs) == 41 == len({d["id"] for d in dogs})
    flagged = [d for d in dogs if "near_duplicate_of" in d["payload"]]
    assert len(flagged) == 1
    look_alike = (await celery_gateway.get(f"/v1/dogs/{flagged[0]['payload']['near_duplicate_of']}")).json()
    assert look_alike["payload"]["breed"] == originals[1].parent.name
    assert all(d["payload"]["shelter"] == "north" and len(d["payload"]["phash"]) == 16 for d in dogs)
    # Each photo went through the model once, in batches (of up to 8), not one by one.
    assert sum(model.batch_sizes) == 41 and len(model.batch_sizes) < 41 / 4

    # The same folder again: nothing new, everything counted as already stored.
    again = (await celery_gateway.post("/v1/jobs/index", json={"path": str(photos)})).json()
    job = await wait_job(celery_gateway, again["id"])
    assert (job["state"], job["indexed"], job["duplicates"], job["already_stored"], job["failed"]) == \
        ("done", 0, 42, 41, 2)
    assert len(await all_dogs(celery_gateway)) == 41 and sum(model.batch_sizes) == 41
    # The gateway's /metrics counts what the workers did, from Redis.
    assert await job_photo_totals(celery_gateway) == {"indexed": 40.0, "near_duplicate": 1.0, "duplicate": 2.0,
                                                      "already_stored": 41.0, "failed": 4.0}


async def test_cancel_stops_a_job(celery_gateway, settings, photos):
    r = await celery_gateway.post("/v1/jobs/index", json={"path": str(photos)})
    job_id = r.json()["id"]
    # No worker runs yet: the job waits in the queue, and cancelling it means no batch does anything.
    cancelled = (await celery_gateway.delete(f"/v1/jobs/{job_id}")).json()
    assert cancelled["state"] == "cancelled" and cancelled["finished_at"]
    jobs, gateway = settings
    app = worker_celery(jobs, gateway)
    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
        listed = (await celery_gateway.get("/v1/jobs")).json()["items"]
    assert [j["id"] for j in listed] == [job_id] and listed[0]["state"] == "cancelled"
    assert listed[0]["indexed"] == 0 and await all_dogs(celery_gateway) == []
