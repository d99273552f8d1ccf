from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.fakes import ColorGridModel, fake_all_in_one, serving

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = REPO / "samples"


@pytest.fixture
def fake_model() -> ColorGridModel:
    return ColorGridModel()


@pytest.fixture
async def gateway(tmp_path, fake_model):
    """The all-in-one app (fake model, real embedded Qdrant) behind an httpx client, lifespan running."""

    app = fake_all_in_one(tmp_path / "data", fake_model,
                            gateway_options={"max_upload_bytes": 200_000, "max_image_pixels": 1_000_000})
    async with serving(app) as client:
        yield client


@pytest.fixture
def gateway_factory(tmp_path, fake_model):
    """Like `gateway`, for synchronous tests (hypothesis): (run(coroutine), client) on one event loop."""
    import asyncio


    loop = asyncio.new_event_loop()
    app = fake_all_in_one(tmp_path / "data", fake_model,
                            gateway_options={"max_upload_bytes": 200_000, "max_image_pixels": 1_000_000})
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")
    try:
        yield loop.run_until_complete, client
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
