"""Redis, the job broker, down under a gateway that uses it (its jobs, and every new photo's look-alikes by hash):
/readyz says so (still ready: searches go on), and what needs it is a 503 naming it with Retry-After (each was a
500)."""
from __future__ import annotations

import asyncio

import pytest

from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import RED, add, search
from tests.images import solid

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


@pytest.fixture
async def gateway(tmp_path, fake_model):
    async with serving(fake_all_in_one(tmp_path / "data", fake_model,
                                       jobs_options={"broker_url": DEAD_BROKER})) as client:
        yield client


async def test_a_dead_broker_is_said_by_readyz_and_what_needs_it_is_a_503(gateway):
    for _ in range(100):  # the start-up's storage upgrade first (nothing stored: a moment)
        ready = await gateway.get("/readyz")
        if "upgrading" not in ready.text:
            break
        await asyncio.sleep(0.1)
    assert ready.status_code == 200 and ready.json()["degraded"].startswith("job broker unreachable"), ready.text
    for r in (await add(gateway, solid(RED)), await gateway.get("/v1/jobs"),
              await gateway.get("/v1/jobs/00000000-0000-0000-0000-000000000000")):
        assert r.status_code == 503, r.text
        assert "job broker (Redis) does not answer" in r.json()["detail"] and r.headers["retry-after"] == "1"
        assert "127.0.0.1" not in r.text, r.text  # Redis's address stays in the log (a caller had it)
    assert (await search(gateway, solid(RED))).status_code == 200  # nothing stored, nothing needed of Redis
    assert (await gateway.get("/v1/dogs")).json()["total"] == 0


async def test_a_dog_stored_while_the_broker_is_down_is_checked_against_the_watches_here(tmp_path, fake_model):
    """The broker gone after a photo's look-alikes were looked up: the dog is stored, and its watch check, which
    workers do, could not be sent. Was a 500 (the dog stored all the same, the check lost); now checked here."""
    import json

    from dogsearch.gallery.locks import PhotoLocks
    from dogsearch.jobs.store import SqliteJobStore
    from dogsearch.models.calibration import FILE_NAME
    from tests.gateway.test_samedog import CALIBRATION

    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(CALIBRATION.to_json()))
    app = fake_all_in_one(tmp_path / "data", fake_model, jobs_options={"broker_url": DEAD_BROKER},
                          gateway_options={"calibration_dir": models})
    async with serving(app) as client:
        ingest = app.state.parts.gallery.ingest  # Redis answered its hashes and its locks
        ingest.hashes, ingest.locks = SqliteJobStore(tmp_path / "hashes.sqlite3"), PhotoLocks()
        lost = (await add(client, solid(RED), status="lost")).json()["id"]
        watch = (await client.post("/v1/watches", json={"dog_id": lost, "min_probability": 0.5})).json()
        found = await add(client, solid((205, 25, 25)), status="found")
        assert found.status_code == 201, found.text
        matches = (await client.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
        assert [m["dog"]["id"] for m in matches] == [found.json()["id"]], matches
