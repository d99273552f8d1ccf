"""Photos being indexed are not indexed by a second job at once: a job request sent again (a double click, a retry
after a timeout), or one over the parent folder of a folder being indexed, a sub-folder of it, a folder a link leads
into it from, or a manifest listing its files, is a 409 naming the job and where they overlap. Accepted, the second
job would store nothing new and count the first's photos again."""
from __future__ import annotations

import asyncio
import io

from PIL import Image

from dogsearch.jobs.sources import Reads, job_reads
from tests.fakes import fake_all_in_one, serving
from tests.jobs.helpers import all_dogs, wait_job
from tests.jobs.servers import SlowModel


def test_two_jobs_share_photos_where_one_folder_holds_the_other_or_both_list_one_folders_files():
    gallery = Reads(trees=("/in/gallery",))
    assert gallery.shared(Reads(trees=("/in",))) == "/in/gallery"  # the parent: the inner folder is shared
    assert gallery.shared(Reads(trees=("/in/gallery/beagle",))) == "/in/gallery/beagle"
    assert gallery.shared(Reads(trees=("/in/gallery2", "/in/gal"))) is None  # names that only begin alike
    assert gallery.shared(Reads(folders=("/in/gallery/beagle", "/in/other"))) == "/in/gallery/beagle"
    assert Reads(trees=("/in/gallery/beagle",)).shared(Reads(folders=("/in/gallery",))) is None  # its files only
    assert Reads(folders=("/in/a", "/in/b")).shared(Reads(folders=("/in/b", "/in/c"))) == "/in/b"
    assert Reads(trees=("/",)).shared(gallery) == "/in/gallery"


def test_a_folder_reads_the_folders_its_links_lead_to_and_a_manifest_the_folders_of_its_files(tmp_path):
    root = tmp_path / "in"
    (root / "a" / "deep").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "b" / "to-a").symlink_to(root / "a" / "deep")  # inside the roots: read as part of b
    (root / "b" / "to-b").symlink_to(root / "b")  # a loop, within its own folder
    (root / "list.csv").write_text("path\na/deep/x.jpg\nb/y.jpg\nb/z.jpg\n")
    assert job_reads(root / "b", None, None, {}, [root]) == Reads(trees=(str(root / "a" / "deep"), str(root / "b")))
    assert job_reads(root, root / "list.csv", None, {}, [root]) == \
        Reads(folders=(str(root / "a" / "deep"), str(root / "b")))


def photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 30, 160)).save(out, "PNG")
    return out.getvalue()


async def test_a_job_over_photos_a_job_is_indexing_is_refused_until_that_one_ends(tmp_path, photos):
    inside = tmp_path / "in"
    beagle = photos / "beagle"
    (inside / "beagle-link").symlink_to(beagle)
    (inside / "picks").mkdir()
    (inside / "picks" / "beagles").symlink_to(beagle)
    (inside / "lists").mkdir()
    (inside / "lists" / "beagles.csv").write_text(f"path\n../gallery/beagle/{sorted(beagle.iterdir())[0].name}\n")
    (inside / "other").mkdir()
    (inside / "other" / "new.png").write_bytes(photo())
    app = fake_all_in_one(tmp_path / "data", SlowModel(delay_s=0.3),
                          jobs_options={"broker_url": None, "allowed_roots": [str(inside)], "batch_size": 8})
    async with serving(app) as c:
        first = (await c.post("/v1/jobs/index", json={"path": str(photos)})).json()["id"]
        # the same folder however it is named, and every way into or around it: the answer names where
        for spelled, where in [(str(photos), "this folder"), (f"{photos}/", "this folder"),
                               (f"{photos}/../gallery", "this folder"), (str(beagle), "this folder"),
                               (str(inside / "beagle-link"), "this folder"),
                               (str(inside), f"{photos}, which this job would index too"),
                               (str(inside / "picks"), f"{beagle}, which this job would index too"),
                               (str(inside / "lists" / "beagles.csv"), f"{beagle}, which this job would index too")]:
            again = await c.post("/v1/jobs/index", json={"path": spelled})
            assert again.status_code == 409, (spelled, again.text)
            body = again.json()
            assert body["code"] == "folder_being_indexed" and body["job_id"] == first, body
            assert body["detail"] == (f"job {first} (started on {photos}) is indexing {where} (running): wait for "
                                      "it to finish, or cancel it"), body
        apart = await c.post("/v1/jobs/index", json={"path": str(inside / "other")})  # no photo of the first's
        assert apart.status_code == 202, apart.text

        await c.delete(f"/v1/jobs/{first}")
        # two at once: one job, not two
        both = await asyncio.gather(*(c.post("/v1/jobs/index", json={"path": str(beagle)}) for _ in range(2)))
        assert sorted(r.status_code for r in both) == [202, 409], [r.text for r in both]
        nested = next(r.json()["id"] for r in both if r.status_code == 202)
        await wait_job(c, nested)
        later = await c.post("/v1/jobs/index", json={"path": str(photos)})  # once it has ended, the folder is free
        assert later.status_code == 202, later.text
        job = await wait_job(c, later.json()["id"])
        assert job["state"] == "done" and job["total"] == 40
        assert (await wait_job(c, apart.json()["id"]))["indexed"] == 1
        assert len(await all_dogs(c)) == 41  # what the cancelled job stored, and the rest
