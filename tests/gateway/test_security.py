from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
import pytest

from dogsearch.services.allinone import create_all_in_one
from dogsearch.services.gateway.settings import GatewaySettings
from tests.fakes import ColorGridModel
from tests.images import solid


@asynccontextmanager
async def gateway_with(tmp_path, **options):
    app = create_all_in_one(tmp_path, model_factory=ColorGridModel, gateway_options=options)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            yield client


def upload(color=(200, 0, 0)):
    return {"files": {"image": ("d.jpg", solid(color))}}


async def test_api_key_guards_every_write_but_not_reads(tmp_path):
    async with gateway_with(tmp_path, api_key="s3cret") as client:
        refused = await client.post("/v1/dogs", **upload())
        assert refused.status_code == 401 and "API key" in refused.json()["detail"]
        assert (await client.post("/v1/dogs", headers={"X-API-Key": "wrong"}, **upload())).status_code == 401
        added = await client.post("/v1/dogs", headers={"X-API-Key": "s3cret"}, **upload())
        assert added.status_code == 201
        dog = added.json()["id"]
        assert (await client.delete(f"/v1/dogs/{dog}")).status_code == 401
        # Reads, searches included, need no key.
        assert (await client.get(f"/v1/dogs/{dog}")).status_code == 200
        assert (await client.post("/v1/search", **upload())).status_code == 200
        assert (await client.get("/v1/dogs")).json()["total"] == 1
        bearer = await client.delete(f"/v1/dogs/{dog}", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 204


def test_api_key_comes_from_dogsearch_api_key(monkeypatch):
    monkeypatch.setenv("DOGSEARCH_API_KEY", "from-env")
    assert GatewaySettings().api_key.get_secret_value() == "from-env"


async def test_rate_limit_per_client_answers_429_with_retry_after(tmp_path):
    async with gateway_with(tmp_path, rate_limit_per_minute=60, rate_limit_burst=3) as client:
        codes = [(await client.get("/v1/dogs")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        limited = await client.get("/v1/dogs")
        assert int(limited.headers["retry-after"]) >= 1
        # Another client (by its key) has its own bucket; health checks are never limited.
        assert (await client.get("/v1/dogs", headers={"X-API-Key": "other"})).status_code == 200
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(("origin", "allowed"), [("https://dogs.example", True), ("https://evil.example", False)])
async def test_cors_origins_come_from_settings(tmp_path, origin, allowed):
    async with gateway_with(tmp_path, cors_origins=["https://dogs.example"]) as client:
        r = await client.options("/v1/search", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert (r.headers.get("access-control-allow-origin") == origin) is allowed
