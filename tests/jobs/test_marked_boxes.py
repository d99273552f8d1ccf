"""A manifest's `box` column: where each photo's dog is, as its maker marked it (a shelter's annotated photos, a
labelled data set). That box is the photo's dog, the detector is not asked, and a re-run adds nothing; a box that is
not one refuses the job, a box outside its photo fails that file."""
from __future__ import annotations

import json
import shutil

import celery.contrib.testing.tasks  # noqa: F401  (the ping task start_worker expects)
import pytest
from celery.contrib.testing.worker import start_worker
from PIL import Image

from dogsearch.jobs.settings import JobsSettings
from dogsearch.services.gateway.app import create_app
from dogsearch.services.gateway.settings import GatewaySettings
from dogsearch.services.worker import worker_celery
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.gateway.helpers import BLUE, RED
from tests.images import encode
from tests.jobs.helpers import all_dogs, wait_job
from tests.jobs.servers import REDIS_URL, Backends

BACKGROUND = (235, 235, 235)


def _photo(size, *patches) -> bytes:
    im = Image.new("RGB", size, BACKGROUND)
    for colour, (x0, y0, x1, y1) in patches:
        im.paste(Image.new("RGB", (x1 - x0, y1 - y0), colour), (x0, y0))
    return encode(im, "PNG")


@pytest.fixture(params=["in-process", "celery"])
async def client(request, tmp_path):
    """The gateway with the blob detector: its jobs run in-process, or go through Redis to a real Celery worker (the
    manifest's rows, boxes included, cross the broker as JSON)."""
    if request.param == "in-process":
        app = fake_all_in_one(tmp_path / "data", detector=True, jobs_options={
            "broker_url": None, "allowed_roots": [str(tmp_path / "in")], "batch_size": 4})
        async with serving(app) as c:
            yield c
        return
    request.getfixturevalue("redis_clean")
    with Backends(tmp_path, ColorGridModel(), detector=True) as backends:
        jobs = JobsSettings(broker_url=REDIS_URL, data_dir=tmp_path / "jobs", allowed_roots=[tmp_path / "in"],
                            batch_size=4, visibility_timeout_s=3)
        gateway = GatewaySettings(data_dir=tmp_path / "photos", embedder_url=backends.embedder.url,
                                  search_url=backends.search.url)
        with start_worker(worker_celery(jobs, gateway), pool="threads", concurrency=2, perform_ping_check=False,
                          shutdown_timeout=20):
            async with serving(create_app(gateway, jobs_settings=jobs)) as c:
                yield c


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    # a blue dog one cell of the blob detector's grid (it sees none); a photo of two dogs, twice (the same bytes)
    (root / "speck.png").write_bytes(_photo((640, 480), (BLUE, (200, 150, 240, 180))))
    (root / "two.png").write_bytes(_photo((160, 120), (RED, (10, 30, 50, 80)), (BLUE, (80, 10, 150, 110))))
    shutil.copy(root / "two.png", root / "two-again.png")
    return root


async def test_a_manifest_box_is_the_photos_dog_and_a_rerun_adds_nothing(client, folder):
    rows = [("speck.png", "190,140,250,190", "speck"), ("two.png", "5,25,55,85", "small red"),
            ("two-again.png", "", "found"), ("speck.png", "630,470,700,500", "outside")]
    # a CSV cell with commas is quoted
    (folder / "dogs.csv").write_text("path,box,name\n" + "".join(f'{p},"{b}",{n}\n' for p, b, n in rows))
    body = {"path": str(folder / "dogs.csv")}
    job = await wait_job(client, (await client.post("/v1/jobs/index", json=body)).json()["id"])
    assert (job["state"], job["indexed"], job["failed"]) == ("done", 3, 1), job
    assert job["errors"] == [{"file": "speck.png [box 630,470,700,500]", "reason": "box [630.0, 470.0, 700.0, 500.0] "
                              "holds under 16x16 pixels of the 640x480 photo: mark the whole dog"}]
    stored = [d["payload"] for d in await all_dogs(client)]
    dogs = {p["name"]: p for p in stored}
    # the detector found both dogs of two-again.png, each a dog with the row's fields
    assert sorted(p["name"] for p in stored) == ["found", "found", "small red", "speck"]
    assert dogs["speck"]["box"] == [190.0, 140.0, 250.0, 190.0] and dogs["speck"]["marked"] is True
    assert dogs["speck"]["breed_guess"][0]["breed"] == "Kerry blue terrier"  # the marked crop's, not the photo's
    assert dogs["small red"]["box"] == [5.0, 25.0, 55.0, 85.0] and dogs["small red"]["marked"] is True
    found = sorted(p["box"][0] for p in stored if p["name"] == "found")
    assert found[0] < 20 and found[1] > 70 and not any(p.get("marked") for p in stored if p["name"] == "found")

    again = await wait_job(client, (await client.post("/v1/jobs/index", json=body)).json()["id"])
    assert (again["indexed"], again["already_stored"], again["failed"]) == (0, 3, 1), again
    assert len(await all_dogs(client)) == 4


async def test_a_jsonl_box_is_a_list_and_one_that_is_not_a_box_refuses_the_job(client, folder):
    (folder / "ok.jsonl").write_text(json.dumps({"path": "speck.png", "box": [190, 140, 250, 190]}) + "\n")
    job = await wait_job(client, (await client.post("/v1/jobs/index",
                                                    json={"path": str(folder / "ok.jsonl")})).json()["id"])
    assert (job["indexed"], job["failed"]) == (1, 0), job
    [dog] = await all_dogs(client)
    assert dog["payload"]["box"] == [190.0, 140.0, 250.0, 190.0]
    for name, row in (("bad.jsonl", {"path": "two.png", "box": [1, 2, 3]}),
                      ("worse.jsonl", {"path": "two.png", "box": "250,140,190,190"})):
        (folder / name).write_text(json.dumps(row) + "\n")
        r = await client.post("/v1/jobs/index", json={"path": str(folder / name)})
        assert r.status_code == 422 and f"{name} line 1: box" in r.json()["detail"], r.text
    assert len(await all_dogs(client)) == 1


async def test_a_manifest_that_lists_a_photo_twice_is_refused_naming_both_lines(client, folder):
    """A job counts each listed file once: the same file twice would never finish (and the same dog twice is one)."""
    for rows, again in ((["two.png,", "two.png,"], "two.png is listed again"),
                        (['two.png,"5,25,55,85"', 'two.png,"5,25,55,85"'], "two.png [box 5,25,55,85] is listed again")):
        (folder / "dogs.csv").write_text("path,box\n" + "\n".join(rows) + "\n")
        r = await client.post("/v1/jobs/index", json={"path": str(folder / "dogs.csv")})
        assert r.status_code == 422 and f"dogs.csv line 3: {again} (first on line 2)" in r.json()["detail"], r.text
    assert await all_dogs(client) == []
