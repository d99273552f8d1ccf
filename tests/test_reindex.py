"""`dogsearch reindex`: a gallery made with one (fake) model is re-embedded from its stored photos with
another of a different dimension, then swapped in; payloads stay, and nothing is lost on failure."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from dogsearch.gallery.reindex import ReindexError, reindex
from dogsearch.search.contract import CollectionInfo, StoreError
from dogsearch.search.edge import EdgeStore
from dogsearch.services.allinone import create_all_in_one
from tests.fakes import ColorGridModel
from tests.images import halves, solid

COLOURS = {"rex": (220, 20, 20), "fido": (20, 200, 40), "lassie": (20, 40, 220)}


class CoarseGridModel(ColorGridModel):
    """A second fake: a 2x2 grid, so another dimension (12) and another model id."""

    model_id = "test-color-grid-2x2"
    dim = 12

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        small = image.convert("RGB").resize((2, 2), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1) - 0.5


@contextlib.asynccontextmanager
async def gallery(data_dir: Path, model):
    app = create_all_in_one(data_dir, model_factory=lambda: model)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client


async def _fill(data_dir: Path) -> dict[str, dict]:
    async with gallery(data_dir, ColorGridModel()) as client:
        for name, colour in COLOURS.items():
            r = await client.post("/v1/dogs", files={"image": ("d.jpg", solid(colour))},
                                  data={"name": name, "breed": "mix"})
            assert r.status_code == 201, r.text
        r = await client.post("/v1/dogs", files={"image": ("d.png", halves((200, 200, 0), (0, 0, 0)))},
                              data={"name": "png-dog"})
        assert r.status_code == 201, r.text
        return {d["id"]: d["payload"] for d in (await client.get("/v1/dogs")).json()["items"]}


async def test_reindex_swaps_in_the_new_model_and_keeps_payloads(tmp_path):
    data_dir = tmp_path / "data"
    before = await _fill(data_dir)
    assert {p["model"] for p in before.values()} == {"test-color-grid"}

    report = reindex(data_dir, CoarseGridModel(), progress=False)
    assert report.swapped and report.points == 4 and report.dim == 12
    assert report.old_model == "test-color-grid" and report.new_model == "test-color-grid-2x2"
    assert not (data_dir / "vectors" / "dogs__reindex").exists()

    async with gallery(data_dir, CoarseGridModel()) as client:
        after = {d["id"]: d["payload"] for d in (await client.get("/v1/dogs")).json()["items"]}
        assert set(after) == set(before)
        for dog_id, payload in before.items():
            assert after[dog_id] == payload | {"model": "test-color-grid-2x2"}
        r = await client.post("/v1/search", files={"image": ("q.jpg", solid(COLOURS["fido"]))})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["payload"]["name"] == "fido"

    # the vectors are the new model's embeddings of the stored photos
    with EdgeStore(data_dir / "vectors") as store:
        assert store.collection_info == CollectionInfo(dim=12, model="test-color-grid-2x2")
        fido = next(i for i, p in before.items() if p["name"] == "fido")
        stored = np.asarray(store.get(fido, with_vector=True).vector)
    expected = CoarseGridModel().embed_images([Image.open(io.BytesIO(solid(COLOURS["fido"])))])[0]
    assert np.allclose(stored, expected, atol=1e-2)  # JPEG round trip

    again = reindex(data_dir, CoarseGridModel(), progress=False)
    assert not again.swapped and again.points == 4


async def test_the_old_model_is_refused_after_a_reindex(tmp_path):
    data_dir = tmp_path / "data"
    await _fill(data_dir)
    reindex(data_dir, CoarseGridModel(), progress=False)
    async with gallery(data_dir, ColorGridModel()) as client:  # vectors of another space: no mixing
        r = await client.post("/v1/dogs", files={"image": ("d.jpg", solid((1, 2, 3)))})
        assert r.status_code == 409, r.text


async def test_a_missing_photo_leaves_the_old_collection_untouched(tmp_path):
    data_dir = tmp_path / "data"
    before = await _fill(data_dir)
    victim = next(iter(before))
    for path in (data_dir / "photos").rglob(f"{victim}.*"):
        if ".thumb." not in path.name:
            path.unlink()
    with pytest.raises(ReindexError, match="missing"):
        reindex(data_dir, CoarseGridModel(), progress=False)
    with EdgeStore(data_dir / "vectors") as store:
        assert store.collection_info == CollectionInfo(dim=48, model="test-color-grid")
        assert store.count() == 4


async def test_reindex_refuses_a_gallery_in_use(tmp_path):
    data_dir = tmp_path / "data"
    await _fill(data_dir)
    with EdgeStore(data_dir / "vectors"), pytest.raises(StoreError, match="already open"):
        reindex(data_dir, CoarseGridModel(), progress=False)


def test_reindex_of_an_empty_data_dir_says_so(tmp_path):
    with pytest.raises(ReindexError, match="nothing to reindex"):
        reindex(tmp_path, CoarseGridModel(), progress=False)


def test_cli_reports_the_swap(tmp_path, monkeypatch, capsys):
    import asyncio

    from dogsearch import cli
    from dogsearch.eval import retrieval as ev

    data_dir = tmp_path / "data"
    asyncio.run(_fill(data_dir))
    monkeypatch.setattr(ev, "load_model", lambda name, device: CoarseGridModel())
    assert cli.main(["reindex", "--data-dir", str(data_dir)]) == 0
    assert "test-color-grid -> test-color-grid-2x2" in capsys.readouterr().out
