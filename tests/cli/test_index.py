"""`dogsearch index` in this process: the job on every service started here, the embedder's model loaded only when
a photo needs embedding."""
from __future__ import annotations

import asyncio
from pathlib import Path

from dogsearch.cli.index import Plan, in_process
from tests.fakes import ColorGridModel, fake_image_models
from tests.images import solid


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
