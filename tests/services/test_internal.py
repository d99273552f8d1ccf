"""The internal doors: the services behind the gateway ask for the internal key, and the gateway's /internal mounts
let through only that key or an admin key."""
from __future__ import annotations

from contextlib import asynccontextmanager

import httpx

from dogsearch.core.access import ApiKey
from dogsearch.services.search.app import create_app as create_search
from dogsearch.services.search.settings import SearchSettings
from tests.fakes import fake_all_in_one
from tests.images import solid
from tests.jobs.servers import REDIS_URL

INTERNAL = "internal-secret-of-the-tests"


@asynccontextmanager
async def serving(app):
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
            yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def test_a_service_with_an_internal_key_asks_it_of_every_route_but_health(tmp_path):
    app = create_search(SearchSettings(data_dir=tmp_path, internal_key=INTERNAL))
    async with serving(app) as client:
        for method, path in (("GET", "/v1/collection"), ("DELETE", "/v1/points/x"), ("GET", "/metrics"),
                             ("PUT", "/v1/collection")):
            refused = await client.request(method, path)
            assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated", path
            assert (await client.request(method, path, headers=bearer("wrong"))).status_code == 401
        assert (await client.get("/healthz")).status_code == 200 and (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics", headers=bearer(INTERNAL))).status_code == 200
        assert (await client.get("/v1/collection", headers=bearer(INTERNAL))).status_code in (200, 404)
        # the key beside another one is not believed (which one was meant is not guessed)
        assert (await client.get("/metrics", headers={"X-API-Key": INTERNAL, **bearer("wrong")})).status_code == 401


def test_the_internal_key_is_one_shared_name(monkeypatch):
    from dogsearch.services.embedder.settings import EmbedderSettings
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.pose.settings import PoseSettings

    monkeypatch.setenv("DOGSEARCH_INTERNAL_KEY", INTERNAL)
    for cls in (EmbedderSettings, SearchSettings, PoseSettings, GatewaySettings):
        assert cls().internal_key.get_secret_value() == INTERNAL, cls.__name__
    monkeypatch.setenv("DOGSEARCH_INTERNAL_KEY", "")  # a blank line in .env: no key
    assert SearchSettings().internal_key is None


async def test_the_gateway_lets_only_the_internal_key_or_an_admin_through_its_internal_mounts(tmp_path, monkeypatch):
    monkeypatch.setenv("DOGSEARCH_INTERNAL_KEY", INTERNAL)  # every service in the process reads it
    keys = [ApiKey.make("alice", "write", "dgs_alice").entry, ApiKey.make("root", "admin", "dgs_root").entry]
    app = fake_all_in_one(tmp_path, gateway_options={"api_keys": keys},
                            jobs_options={"broker_url": REDIS_URL})
    async with serving(app) as client:
        # the gateway's own calls to its services carry the key
        assert (await client.post("/v1/dogs", headers=bearer("dgs_alice"),
                                  files={"image": ("d.jpg", solid((200, 0, 0)))})).status_code == 201
        path = "/internal/search/v1/points/count"
        assert (await client.post(path, json={})).status_code == 401
        assert (await client.post(path, json={}, headers=bearer("dgs_made-up"))).status_code == 401
        assert (await client.post(path, json={}, headers=bearer("dgs_alice"))).status_code == 403
        assert (await client.post(path, json={}, headers=bearer("dgs_root"))).json() == {"count": 1}
        assert (await client.post(path, json={}, headers=bearer(INTERNAL))).json() == {"count": 1}
        assert (await client.get("/internal/embedder/healthz")).status_code == 401  # the whole door is shut
        assert (await client.get("/metrics", headers=bearer(INTERNAL))).status_code == 200  # Prometheus
        assert (await client.get("/v1/dogs", headers=bearer(INTERNAL))).status_code == 401  # not a public key


def test_an_internal_key_too_short_to_be_more_than_a_word_stops_every_service(monkeypatch):
    import pytest
    from pydantic import ValidationError

    from dogsearch.services.embedder.settings import EmbedderSettings
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.pose.settings import PoseSettings

    monkeypatch.setenv("DOGSEARCH_INTERNAL_KEY", "secret")
    for settings in (SearchSettings, EmbedderSettings, PoseSettings, GatewaySettings):
        with pytest.raises(ValidationError, match="at least 16 characters"):
            settings()
    monkeypatch.setenv("DOGSEARCH_INTERNAL_KEY", "x" * 16)
    assert SearchSettings().internal_key.get_secret_value() == "x" * 16
