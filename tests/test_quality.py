"""The real default model, through the whole service over HTTP, answers exactly as the bare model does."""
from __future__ import annotations

import pytest

from dogsearch.eval.service import compare, http_predictions, items_from_folders
from dogsearch.models.registry import create_model
from dogsearch.services.allinone import create_all_in_one
from dogsearch.services.embedder.settings import EmbedderSettings
from dogsearch.services.gateway.client import GatewayClient
from tests.conftest import SAMPLES

pytestmark = pytest.mark.real_model


async def test_service_top1_equals_bare_model_on_the_sample_split(tmp_path):
    gallery = items_from_folders(SAMPLES / "gallery")
    queries = items_from_folders(SAMPLES / "queries")
    model = create_model()
    # The service builds its own copy of the same model, as it would in production; the detector off, so that it
    # embeds whole photos as the bare model does.
    app = create_all_in_one(tmp_path, embedder_settings=EmbedderSettings(detector="none"))
    async with app.router.lifespan_context(app):
        client = GatewayClient("http://gw", app=app)
        report, via_http, bare = await compare(client, model, gallery, queries)
        await client.aclose()
    assert via_http == bare
    assert report.http_top1 == report.bare_top1
    assert report.http_top1 >= 0.5  # 10 breeds: chance is 0.1; the real model does far better


async def test_the_service_on_dog_crops_finds_the_breed_on_the_sample_split(tmp_path):
    """The default detector on: every photo indexed and searched by its largest dog's crop."""
    gallery = items_from_folders(SAMPLES / "gallery")
    queries = items_from_folders(SAMPLES / "queries")
    app = create_all_in_one(tmp_path)
    async with app.router.lifespan_context(app):
        client = GatewayClient("http://gw", app=app, timeout=600)
        via_http = await http_predictions(client, gallery, queries)
        await client.aclose()
    top1 = sum(p == q.fields["breed"] for p, q in zip(via_http, queries, strict=True)) / len(queries)
    assert top1 >= 0.5, top1  # 10 breeds: chance is 0.1
