"""`dogsearch search IMAGE [IMAGE ...] --url URL`: a table with each result's same-dog verdict, several photos of one
dog searched together, and a file that cannot be read said in words."""
from __future__ import annotations

import json

import pytest

from dogsearch import cli
from dogsearch.models.calibration import FILE_NAME, Calibration
from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import BLUE, RED, add
from tests.images import solid
from tests.jobs.servers import Served


@pytest.fixture
def gateway_url(tmp_path, fake_model):
    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True)
    calibration = Calibration("test-color-grid", "isotonic", {"x": [0.0, 0.95, 0.999], "y": [0.0, 0.6, 1.0]}, 0.5)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(calibration.to_json()))
    app = fake_all_in_one(tmp_path / "data", fake_model, gateway_options={"calibration_dir": models})
    with Served(app) as served:
        yield served.url


async def stored(url: str) -> dict[str, str]:
    import httpx

    async with httpx.AsyncClient(base_url=url) as client:
        return {name: (await add(client, solid(color), name=name)).json()["id"]
                for name, color in (("Red", RED), ("Blue", BLUE))}


def test_the_table_says_whether_each_result_is_the_same_dog(tmp_path, gateway_url, capsys):
    import asyncio

    ids = asyncio.run(stored(gateway_url))
    photos = [tmp_path / "a.png", tmp_path / "b.jpg"]
    photos[0].write_bytes(solid(RED, fmt="PNG"))
    photos[1].write_bytes(solid(RED, size=(80, 60)))
    assert cli.main(["search", *map(str, photos), "-k", "2", "--url", gateway_url]) == 0
    header, first, second, took = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["rank", "score", "same", "dog", "verdict"]
    assert first.split()[3:] == ["likely", "-", "Red", ids["Red"]] and float(first.split()[2]) > 0.99
    assert second.split()[3:] == ["unlikely", "-", "Blue", ids["Blue"]] and took.endswith("ms)")

    assert cli.main(["search", str(photos[0]), str(tmp_path / "gone.jpg"), "--url", gateway_url]) == 2
    assert f"dogsearch search: cannot read {tmp_path / 'gone.jpg'}: No such file or directory" in \
        capsys.readouterr().err


async def test_a_field_too_long_is_refused_without_being_sent_back(tmp_path, fake_model):
    async with serving(fake_all_in_one(tmp_path / "data", fake_model)) as client:
        r = await client.post("/v1/dogs", files={"image": ("d.jpg", solid(RED))}, data={"name": "x" * 20_000})
    assert r.status_code == 422 and len(r.content) < 1_000, r.text
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "name"] and error["input"].endswith("(20000 characters)")
