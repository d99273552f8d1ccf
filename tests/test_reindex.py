"""`dogsearch reindex`: a gallery made with one (fake) model is re-embedded from its stored photos with
another of a different dimension, then swapped in; payloads stay, and nothing is lost on failure. On both engines:
the embedded one in the data folder, and a Qdrant server (qdrant-client's local mode standing in for it, reached
through DOGSEARCH_SEARCH_QDRANT_URL as a deployment would)."""
from __future__ import annotations

import asyncio
import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from qdrant_client import QdrantClient

from dogsearch.gallery.photos import PhotoStore
from dogsearch.gallery.reindex import ReindexError, reindex, staging_name
from dogsearch.search import qdrant as qdrant_module
from dogsearch.search.contract import CollectionInfo, Engine, StoreError
from dogsearch.search.edge import EdgeEngine
from dogsearch.search.qdrant import QdrantEngine
from dogsearch.services.embedder.dogs import crop_model_id
from dogsearch.services.layout import DataLayout
from tests.fakes import ColorGridModel, fake_all_in_one, serving
from tests.images import halves, solid

COLOURS = {"rex": (220, 20, 20), "fido": (20, 200, 40), "lassie": (20, 40, 220)}
# Local mode warns that it ignores payload indexes and search params (it always searches exactly).
pytestmark = pytest.mark.filterwarnings("ignore:.*(Payload indexes|search_params).*:UserWarning")


class CoarseGridModel(ColorGridModel):
    """A second fake: a 2x2 grid, so another dimension (12) and another model id."""

    model_id = "test-color-grid-2x2"
    dim = 12

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        small = image.convert("RGB").resize((2, 2), Image.Resampling.BOX)
        return torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0).permute(2, 0, 1) - 0.5


@dataclass
class Site:
    """A gallery's data folder, and where its vectors live."""

    kind: str
    layout: DataLayout
    qdrant_dir: Path

    def engine(self) -> Engine:
        if self.kind == "edge":
            return EdgeEngine(self.layout.vectors)
        return QdrantEngine(QdrantClient(path=str(self.qdrant_dir)))

    def run(self, model, **kwargs):
        engine = self.engine()
        try:
            return reindex(engine, "dogs", PhotoStore(self.layout.photos), model, progress=False, **kwargs)
        finally:
            engine.close()

    def names(self) -> set[str]:
        """The collections (and aliases) there are."""
        if self.kind == "edge":
            return {p.name for p in self.layout.vectors.iterdir()} if self.layout.vectors.exists() else set()
        with contextlib.closing(QdrantClient(path=str(self.qdrant_dir))) as client:
            return ({c.name for c in client.get_collections().collections}
                    | {a.alias_name for a in client.get_aliases().aliases})

    @contextlib.contextmanager
    def store(self):
        engine = self.engine()
        try:
            with engine.open("dogs") as store:
                yield store
        finally:
            engine.close()


@pytest.fixture(params=["edge", "qdrant"])
def site(request, tmp_path, monkeypatch) -> Site:
    site = Site(request.param, DataLayout(tmp_path / "data"), tmp_path / "qdrant")
    if site.kind == "qdrant":
        # Every service (and the CLI) that connects to "the server" gets a local-mode client on one folder.
        monkeypatch.setenv("DOGSEARCH_SEARCH_QDRANT_URL", "http://qdrant:6333")
        monkeypatch.setattr(qdrant_module, "QdrantClient", lambda **_: QdrantClient(path=str(site.qdrant_dir)))
    return site


@contextlib.asynccontextmanager
async def gallery(site: Site, model, detector: bool = False):
    app = fake_all_in_one(site.layout.root, model, detector=detector)
    async with serving(app) as client:
        yield client


async def _fill(site: Site) -> dict[str, dict]:
    async with gallery(site, ColorGridModel()) as client:
        for name, colour in COLOURS.items():
            r = await client.post("/v1/dogs", files={"image": ("d.jpg", solid(colour))},
                                  data={"name": name, "breed": "mix"})
            assert r.status_code == 201, r.text
        r = await client.post("/v1/dogs", files={"image": ("d.png", halves((200, 200, 0), (0, 0, 0)))},
                              data={"name": "png-dog"})
        assert r.status_code == 201, r.text
        return {d["id"]: d["payload"] for d in (await client.get("/v1/dogs")).json()["items"]}


async def test_reindex_swaps_in_the_new_model_and_keeps_payloads(site):
    before = await _fill(site)
    assert {p["model"] for p in before.values()} == {"test-color-grid"}

    report = site.run(CoarseGridModel())
    assert report.swapped and report.points == 4 and report.dim == 12
    assert report.old_model == "test-color-grid" and report.new_model == "test-color-grid-2x2"
    # Nothing left but the collection: the old one dropped (on a server, "dogs" is now an alias of the new one).
    new_home = staging_name("dogs", CoarseGridModel())
    assert site.names() == ({"dogs"} if site.kind == "edge" else {"dogs", new_home})
    assert site.layout.vectors.exists() == (site.kind == "edge")  # a server's gallery has no vectors/ here

    async with gallery(site, CoarseGridModel()) as client:
        after = {d["id"]: d["payload"] for d in (await client.get("/v1/dogs")).json()["items"]}
        assert set(after) == set(before)
        for dog_id, payload in before.items():
            assert after[dog_id] == payload | {"model": "test-color-grid-2x2"}
        r = await client.post("/v1/search", files={"image": ("q.jpg", solid(COLOURS["fido"]))})
        assert r.status_code == 200, r.text
        assert r.json()["results"][0]["payload"]["name"] == "fido"

    # the vectors are the new model's embeddings of the stored photos
    with site.store() as store:
        assert store.collection_info == CollectionInfo(dim=12, model="test-color-grid-2x2")
        fido = next(i for i, p in before.items() if p["name"] == "fido")
        stored = np.asarray(store.get(fido, with_vector=True).vector)
    expected = CoarseGridModel().embed_images([Image.open(io.BytesIO(solid(COLOURS["fido"])))])[0]
    assert np.allclose(stored, expected, atol=1e-2)  # JPEG round trip

    again = site.run(CoarseGridModel())
    assert not again.swapped and again.points == 4

    # And back: a second swap (on a server, of an alias: one atomic request) drops the collection the first made.
    back = site.run(ColorGridModel())
    assert back.swapped and back.old_model == "test-color-grid-2x2"
    old_home = staging_name("dogs", ColorGridModel())
    assert site.names() == ({"dogs"} if site.kind == "edge" else {"dogs", old_home})
    async with gallery(site, ColorGridModel()) as client:
        r = await client.post("/v1/search", files={"image": ("q.jpg", solid(COLOURS["rex"]))})
        assert r.json()["results"][0]["payload"]["name"] == "rex"
        assert {d["payload"]["model"] for d in (await client.get("/v1/dogs")).json()["items"]} == {"test-color-grid"}


async def test_the_old_model_is_refused_after_a_reindex(site):
    await _fill(site)
    site.run(CoarseGridModel())
    async with gallery(site, ColorGridModel()) as client:  # vectors of another space: no mixing
        r = await client.post("/v1/dogs", files={"image": ("d.jpg", solid((1, 2, 3)))})
        assert r.status_code == 409, r.text


async def test_a_missing_photo_is_skipped_and_named_not_an_abort(site):
    # Was: ReindexError at the first dog whose photo was gone, and the whole gallery stuck on the old model.
    before = await _fill(site)
    victim = next(iter(before))
    for path in site.layout.photos.rglob(f"{victim}.*"):
        if ".thumb." not in path.name:
            path.unlink()
    report = site.run(CoarseGridModel())
    assert report.swapped and report.points == 3
    assert [(s.id, s.reason) for s in report.skipped] == [(victim, "photo missing")]
    assert report.skipped[0].payload["name"] == before[victim]["name"]  # its fields, for the operator
    with site.store() as store:
        assert store.collection_info == CollectionInfo(dim=12, model="test-color-grid-2x2")
        assert store.count() == 3 and store.get(victim) is None


async def test_a_photo_folder_with_none_of_the_photos_leaves_the_old_collection_untouched(site):
    await _fill(site)
    names = site.names()
    for path in site.layout.photos.rglob("*"):
        if path.is_file():
            path.unlink()
    with pytest.raises(ReindexError, match="none of the 4"):
        site.run(CoarseGridModel())
    assert site.names() == names  # the staging collection is dropped
    with site.store() as store:
        assert store.collection_info == CollectionInfo(dim=48, model="test-color-grid")
        assert store.count() == 4


async def test_a_run_that_died_is_cleaned_up_by_the_next(site):
    await _fill(site)
    engine = site.engine()
    with engine.open(staging_name("dogs", CoarseGridModel())) as leftover:  # half a staging collection
        leftover.ensure_collection(CoarseGridModel.dim, CoarseGridModel.model_id)
    engine.close()
    assert site.run(CoarseGridModel()).points == 4
    with site.store() as store:
        assert store.count() == 4


async def test_reindex_refuses_a_gallery_in_use(tmp_path):
    # The embedded engine only: its folder lock refuses a second opener (a server serves any number).
    site = Site("edge", DataLayout(tmp_path / "data"), tmp_path / "qdrant")
    await _fill(site)
    with site.store(), pytest.raises(StoreError, match="already open"):
        site.run(CoarseGridModel())


def test_reindex_of_an_empty_data_dir_says_so(site):
    with pytest.raises(ReindexError, match="nothing to reindex"):
        site.run(CoarseGridModel())


def test_cli_on_a_data_dir_without_a_gallery_says_so_and_creates_nothing(tmp_path, monkeypatch, capsys):
    """A wrong --data-dir (`make demo`'s is .data/demo) is said before any model loads or any folder is made, and
    the lock of a gallery a server holds names that server."""
    from dogsearch import cli
    from dogsearch.eval import retrieval as ev

    monkeypatch.setattr(ev, "load_model", lambda name, device: pytest.fail("no model is needed"))
    data = tmp_path / "data"
    data.mkdir()
    assert cli.main(["reindex", "--data-dir", str(data)]) == 1
    assert "no collection 'dogs' in " in capsys.readouterr().err
    assert list(data.iterdir()) == []

    site = Site("edge", DataLayout(data), tmp_path / "qdrant")
    asyncio.run(_fill(site))
    monkeypatch.setattr(ev, "load_model", lambda name, device: CoarseGridModel())
    with site.store():  # as a running `dogsearch serve` holds it
        assert cli.main(["reindex", "--data-dir", str(data), "--detector", "none"]) == 1
    assert "a running `dogsearch serve` on this data directory?" in capsys.readouterr().err


def test_cli_reports_the_swap(site, monkeypatch, capsys):
    from dogsearch import cli
    from dogsearch.eval import retrieval as ev

    asyncio.run(_fill(site))
    monkeypatch.setattr(ev, "load_model", lambda name, device: CoarseGridModel())
    victim = next(site.layout.photos.rglob("*.png"))  # png-dog's photo
    victim.unlink()
    assert cli.main(["reindex", "--data-dir", str(site.layout.root), "--detector", "none"]) == 0
    out, err = capsys.readouterr()
    assert "test-color-grid -> test-color-grid-2x2 (dim 12), skipped 1" in out
    assert f"skipped: {victim.name.split('.')[0]}: photo missing" in err
    kept = next(site.layout.root.glob("reindex-skipped-*.jsonl")).read_text()
    assert '"name": "png-dog"' in kept
    with site.store() as store:  # the engine the settings name: on a server, DOGSEARCH_SEARCH_QDRANT_URL's
        assert store.collection_info == CollectionInfo(dim=12, model="test-color-grid-2x2")


def _two_dogs() -> bytes:
    """A light photo with a large red dog and a small blue one (the blob detector's dogs)."""
    im = Image.new("RGB", (160, 120), (235, 235, 235))
    im.paste(Image.new("RGB", (70, 100), (200, 20, 20)), (80, 10))
    im.paste(Image.new("RGB", (40, 50), (20, 20, 200)), (10, 30))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


async def test_reindex_with_a_detector_embeds_each_dog_and_brings_in_a_photos_other_dogs(site):
    from dogsearch.services.embedder.dogs import DogCropModel
    from tests.fakes import BlobDetector, FakeClassifier

    two = _two_dogs()
    async with gallery(site, ColorGridModel()) as client:  # stored before dogs were detected: whole photos
        rex = (await client.post("/v1/dogs", files={"image": ("a.png", two)}, data={"name": "rex"})).json()["id"]
        plain = (await client.post("/v1/dogs", files={"image": ("b.jpg", solid((90, 90, 90)))},
                                   data={"name": "plain", "breed": "mix"})).json()["id"]
    async with gallery(site, ColorGridModel(), detector=True) as client:  # the old vectors are refused
        r = await client.post("/v1/search", files={"image": ("q.png", two)})
        assert r.status_code == 409 and r.json()["code"] == "collection_mismatch", r.text

    with site.store() as store:  # rex's photo is a copy of another dog's: so is the photo of the dog found beside it
        store.set_payload([rex], {"near_duplicate_of": plain})
    cropper = DogCropModel(ColorGridModel(), BlobDetector(), FakeClassifier())
    report = site.run(cropper)
    assert report.swapped and report.new_model == crop_model_id("test-color-grid")
    assert report.added == 1 and report.points == 3  # the small blue dog of rex's photo is a dog of its own now
    again = site.run(cropper)
    assert not again.swapped and again.points == 3  # run again: nothing to do, nothing doubled

    async with gallery(site, ColorGridModel(), detector=True) as client:
        dogs = {d["id"]: d["payload"] for d in (await client.get("/v1/dogs")).json()["items"]}
        assert len(dogs) == 3 and rex in dogs and plain in dogs
        assert dogs[rex]["name"] == "rex" and dogs[rex]["box"][0] > 70  # the large red dog, the user's fields
        assert dogs[rex]["breed_guess"][0]["breed"] == "Irish setter"
        assert "box" not in dogs[plain] and dogs[plain]["name"] == "plain"  # no dog found: the whole photo stays
        [other] = [i for i in dogs if i not in (rex, plain)]
        assert "name" not in dogs[other] and dogs[other]["box"][0] < 20  # the small blue dog, none of rex's fields
        assert dogs[other]["sha256"] == dogs[rex]["sha256"] and dogs[other]["breed_guess"][0]["breed"] == (
            "Kerry blue terrier")
        assert dogs[other]["phash"] == dogs[rex]["phash"] and dogs[other]["near_duplicate_of"] == plain
        small = await client.post("/v1/search", files={"image": ("q.png", two)}, data={"dog": "1"})
        assert small.status_code == 200, small.text
        assert small.json()["results"][0]["id"] == other
    # each entry says how many dogs its photo shows: a bulk job run on rex's photo again knows both are stored
    with site.store() as store:
        counts = {p.id: p.payload.get("photo_dogs") for p in store.retrieve([rex, other, plain])}
    assert counts == {rex: 2, other: 2, plain: 1}


async def test_reindex_embeds_a_dog_its_user_marked_from_its_own_box(site):
    from dogsearch.services.embedder.dogs import DogCropModel
    from tests.fakes import BlobDetector, FakeClassifier

    im = Image.new("RGB", (640, 480), (235, 235, 235))
    im.paste(Image.new("RGB", (40, 30), (20, 40, 220)), (200, 150))  # one cell of the blob detector's grid: no dog
    buf = io.BytesIO()
    im.save(buf, "PNG")
    speck = buf.getvalue()
    async with gallery(site, ColorGridModel(), detector=True) as client:
        r = await client.post("/v1/dogs", files={"image": ("s.png", speck)}, data={"name": "speck",
                                                                                  "box": "190,140,250,190"})
        assert r.status_code == 201, r.text
        marked = r.json()["id"]
    report = site.run(DogCropModel(CoarseGridModel(), BlobDetector(), FakeClassifier()))
    assert report.swapped and report.points == 1 and report.added == 0
    async with gallery(site, CoarseGridModel(), detector=True) as client:
        [dog] = (await client.get("/v1/dogs")).json()["items"]
        assert dog["id"] == marked and dog["payload"]["box"] == [190.0, 140.0, 250.0, 190.0]
        assert dog["payload"]["marked"] is True and dog["payload"]["name"] == "speck"
        # the same crop searched for again: its own vector, to the float
        found = await client.post("/v1/search", files={"image": ("q.png", speck)}, data={"box": "190,140,250,190"})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["id"] == marked and found.json()["results"][0]["score"] > 0.9999


async def test_reindex_brings_no_photo_back_into_the_dog_its_user_removed_it_from(site):
    # The small blue dog of a photo is a dog of its own, which its user then gave another photo and took this one
    # from (the dog keeps its id: the photo's second entry's). A reindex that finds the blue dog again must not make
    # a point of that id: it would be a second cover of that dog, the removed photo back in it.
    from dogsearch.services.embedder.dogs import DogCropModel
    from tests.fakes import BlobDetector, FakeClassifier

    two = _two_dogs()
    async with gallery(site, ColorGridModel(), detector=True) as client:
        rex = (await client.post("/v1/dogs", files={"image": ("a.png", two)})).json()["id"]
        blue = (await client.post("/v1/dogs", files={"image": ("a.png", two)}, data={"dog": "1"})).json()["id"]
        another = Image.new("RGB", (160, 120), (235, 235, 235))
        another.paste(Image.new("RGB", (50, 60), (20, 30, 190)), (60, 30))  # the blue dog elsewhere
        buf = io.BytesIO()
        another.save(buf, "PNG")
        later = await client.post(f"/v1/dogs/{blue}/photos", files={"image": ("b.png", buf.getvalue())})
        assert later.status_code == 201, later.text
        assert (await client.delete(f"/v1/dogs/{blue}/photos/{rex}")).status_code == 204  # the photo's id is rex's
    report = site.run(DogCropModel(CoarseGridModel(), BlobDetector(), FakeClassifier()))
    assert report.swapped and report.added == 0 and report.points == 2
    with site.store() as store:
        covers = [p.payload["photo_id"] for p in store.scroll(10, None, {"dog_id": blue, "cover": True})[0]]
    assert covers == [later.json()["photo_id"]]
