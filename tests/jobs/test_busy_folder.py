"""A folder being indexed is not indexed twice at once: a job request sent again (a double click, a retry after a
timeout) is a 409 naming the job, which would otherwise store nothing new and count the first's photos again."""
from __future__ import annotations

import asyncio

from tests.fakes import fake_all_in_one, serving
from tests.jobs.helpers import all_dogs, wait_job
from tests.jobs.servers import SlowModel


async def test_a_second_job_over_a_folder_being_indexed_is_refused_until_the_first_ends(tmp_path, photos):
    app = fake_all_in_one(tmp_path / "data", SlowModel(delay_s=0.3),
                          jobs_options={"broker_url": None, "allowed_roots": [str(tmp_path / "in")], "batch_size": 8})
    async with serving(app) as c:
        first = (await c.post("/v1/jobs/index", json={"path": str(photos)})).json()["id"]
        for spelled in (str(photos), f"{photos}/", f"{photos}/../gallery"):  # the same folder however it is named
            again = await c.post("/v1/jobs/index", json={"path": spelled})
            assert again.status_code == 409, again.text
            assert again.json()["code"] == "folder_being_indexed" and first in again.json()["detail"]
        # two at once: one job, not two
        both = await asyncio.gather(*(c.post("/v1/jobs/index", json={"path": str(photos / "beagle")})
                                      for _ in range(2)))
        assert sorted(r.status_code for r in both) == [202, 409], [r.text for r in both]
        nested = next(r.json()["id"] for r in both if r.status_code == 202)

        await c.delete(f"/v1/jobs/{first}")
        await wait_job(c, nested)
        later = await c.post("/v1/jobs/index", json={"path": str(photos)})  # once it has ended, the folder is free
        assert later.status_code == 202, later.text
        job = await wait_job(c, later.json()["id"])
        assert job["state"] == "done" and job["total"] == 40
        assert len(await all_dogs(c)) == 40  # what the cancelled job stored, and the rest
