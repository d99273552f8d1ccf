"""`dogsearch index` in this process: the job on every service started here, the embedder's model loaded only when
a photo needs embedding; and as an upload to a running gateway."""
from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from dogsearch import cli
from dogsearch.cli.index import Plan, in_process
from tests.fakes import ColorGridModel, fake_all_in_one, fake_image_models
from tests.images import solid
from tests.jobs.servers import Served


def test_a_folder_already_stored_is_indexed_again_without_loading_the_model(tmp_path: Path) -> None:
    photos = tmp_path / "photos" / "beagle"
    photos.mkdir(parents=True)
    for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (photos / f"{i}.jpg").write_bytes(solid(color))
    root = photos.parent.resolve()
    plan = Plan(root, str(root), None, None, [root])
    loads: list[ColorGridModel] = []

    def factory() -> ColorGridModel:
        loads.append(ColorGridModel())
        return loads[-1]

    def run() -> dict:
        models = fake_image_models() | {"model_factory": factory}
        return asyncio.run(in_process(plan, tmp_path / "data", embedder_options={"detector": "none"}, **models))

    first = run()
    assert (first["state"], first["indexed"], len(loads)) == ("done", 3, 1)
    again = run()  # a new process's worth of services on the same data: every photo is a duplicate
    assert (again["state"], again["indexed"], again["duplicates"]) == ("done", 0, 3)
    assert len(loads) == 1, "the model was loaded although nothing was embedded"


def test_an_upload_takes_the_csv_given_with_its_paths_made_relative_to_the_folder(tmp_path: Path, capsys) -> None:
    """--csv FILE with --url: the CSV goes up as the upload's labels.csv (its paths were relative to its own folder)
    rather than being refused."""
    photos = tmp_path / "photos" / "beagle"
    photos.mkdir(parents=True)
    for i, color in enumerate([(200, 30, 30), (30, 200, 30)]):
        (photos / f"{i}.jpg").write_bytes(solid(color))
    (photos.parent / "labels.csv").write_text("path,name\nbeagle/0.jpg,not this one\n")  # DIR's own: replaced
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "dogs.csv").write_text("path,name\n../photos/beagle/0.jpg,Rex\n../photos/beagle/1.jpg,Bo\n")
    (meta / "outside.csv").write_text(f"path,name\n{tmp_path / 'elsewhere.jpg'},Max\n")
    with Served(fake_all_in_one(tmp_path / "data")) as served:
        index = ["index", str(photos.parent), "--labels", "csv", "--url", served.url, "--csv"]
        assert cli.main([*index, str(meta / "dogs.csv")]) == 0, capsys.readouterr().err
        said = capsys.readouterr()
        assert "indexed 2," in said.out
        # stderr is no terminal here (a batch job's log): the progress is a plain line, not tqdm's \r frames
        assert "\r" not in said.err and "indexing: 2/2 photo (100%)" in said.err, said.err
        dogs = httpx.get(f"{served.url}/v1/dogs").json()["items"]
        assert sorted(d["payload"]["name"] for d in dogs) == ["Bo", "Rex"]

        assert cli.main([*index, str(meta / "outside.csv")]) == 1
        assert "outside.csv line 2: " in capsys.readouterr().err


async def test_a_job_is_followed_through_a_server_that_stops_answering_for_a_while() -> None:
    """A gateway restarted while `dogsearch index --url` follows its job: the job goes on there, so the command
    asks again instead of quitting (it said only "gateway unavailable", as if the job had failed); past its
    patience it names the job and how to follow it."""
    from dogsearch.cli.index import Following, follow_job
    from dogsearch.core.errors import Unavailable

    answers = iter([{"state": "running"}, Unavailable("gateway unavailable: unreachable"),
                    Unavailable("gateway unavailable: unreachable"), {"state": "done"}])

    async def get() -> dict:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return {"total": 2, "indexed": 1, "duplicates": 0, "failed": 0} | answer

    assert (await follow_job(get, progress=False, every_s=0.01))["state"] == "done"

    async def down() -> dict:
        raise Unavailable("gateway unavailable: unreachable")

    with pytest.raises(Unavailable, match=r"job J1 goes on on the server: `dogsearch jobs show --url U J1 --follow`"):
        await Following(where=" --url U", patience_s=0.05).job({"id": "J1", "state": "queued"}, down)
