from __future__ import annotations

from tests.fakes import fake_all_in_one, serving
from tests.images import solid


async def _session(data_dir, work):
    app = fake_all_in_one(data_dir)
    async with serving(app) as client:
        return await work(client)


async def test_same_data_dir_after_restart_gives_same_dogs_and_answers(tmp_path):
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 30)]
    query = solid((180, 40, 40))

    async def fill(client):
        for i, color in enumerate(colors):
            assert (await client.post("/v1/dogs", files={"image": ("d.jpg", solid(color))},
                                      data={"name": f"dog{i}"})).status_code == 201
        return await snapshot(client)

    async def snapshot(client):
        dogs = (await client.get("/v1/dogs", params={"limit": 100})).json()
        hits = (await client.post("/v1/search", files={"image": ("q.jpg", query)}, data={"k": "4"})).json()
        return dogs["items"], [(h["id"], round(h["score"], 5)) for h in hits["results"]]

    before = await _session(tmp_path, fill)
    after = await _session(tmp_path, snapshot)
    assert after == before
    assert len(after[0]) == 4
