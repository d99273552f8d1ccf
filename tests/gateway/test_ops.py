"""What the gateway exposes for operators."""
from __future__ import annotations

from tests.gateway.helpers import BLUE, RED, add
from tests.images import solid


async def test_ops_endpoints(gateway):
    assert (await gateway.get("/healthz")).json()["status"] == "ok"
    await add(gateway, solid(RED))  # loads the (lazy) model
    ready = await gateway.get("/readyz")
    assert ready.status_code == 200, ready.text
    metrics = (await gateway.get("/metrics")).text
    assert 'dogsearch_http_requests_total{method="POST",route="/v1/dogs",service="gateway",status="201"}' in metrics
    assert 'service="embedder"' in metrics and 'service="search"' in metrics
    assert "/v1/dogs" in (await gateway.get("/openapi.json")).json()["paths"]


async def test_refused_requests_are_counted_and_logged_with_who_and_where(tmp_path, caplog):
    # Refusals by the access check (401, 403, 429) answered before the request counter saw them: an attack was
    # invisible in dogsearch_http_requests_total, and no log line said who was refused, or from where.
    import logging

    from dogsearch.core.access import ApiKey
    from tests.fakes import fake_all_in_one, serving

    admin, reader = "dgs_" + "a" * 40, "dgs_" + "r" * 40
    keys = [ApiKey.make("boss", "admin", admin).entry, ApiKey.make("reader", "search", reader).entry]
    with caplog.at_level(logging.INFO, logger="dogsearch.http"):
        async with serving(fake_all_in_one(tmp_path / "data", gateway_options={"api_keys": keys})) as client:
            assert (await client.get("/v1/dogs")).status_code == 401
            assert (await client.delete(f"/v1/dogs/{'0' * 8}-0000-0000-0000-{'0' * 12}",
                                        headers={"X-API-Key": reader})).status_code == 403
            metrics = (await client.get("/metrics", headers={"X-API-Key": admin})).text
    for status in ("401", "403"):
        assert f'route="unmatched",service="gateway",status="{status}"' in metrics, metrics
    lines = [(r.status, getattr(r, "caller", None), r.client) for r in caplog.records if r.msg == "request"
             and getattr(r, "service", "") == "gateway" and hasattr(r, "client")]
    assert (401, None, "127.0.0.1") in lines and (403, "reader", "127.0.0.1") in lines, lines


async def test_a_gallery_of_another_model_is_not_ready_and_says_how_to_move_it(tmp_path):
    """Every search and every new dog is a 409 while the embedder serves another model than the gallery's vectors:
    a load balancer must not send traffic there, and the operator must read why."""
    from tests.fakes import ColorGridModel, fake_all_in_one, serving
    from tests.test_reindex import CoarseGridModel

    async with serving(fake_all_in_one(tmp_path / "data", ColorGridModel())) as client:
        assert (await add(client, solid(RED))).status_code == 201  # loads the (lazy) model
        assert (await client.get("/readyz")).status_code == 200
    async with serving(fake_all_in_one(tmp_path / "data", CoarseGridModel())) as client:
        assert (await add(client, solid(BLUE))).status_code == 409
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "dogsearch reindex" in ready.json()["reason"], ready.text


async def test_readiness_counts_no_point_and_asks_the_services_again_once_its_answer_is_stale(tmp_path, monkeypatch):
    """A kubelet probes /readyz every few seconds: each probe read the gallery's model with an exact count of every
    point, a cost that grows with the gallery. It reads the model alone now, and from the services again once its
    last answer is READY_CACHE_S old: an embedder redeployed with another model behind a running gateway is not
    ready."""
    import asyncio

    from dogsearch.search.edge import EdgeStore
    from tests.fakes import fake_all_in_one, serving
    from tests.gallery.test_layout import wait_ready

    app = fake_all_in_one(tmp_path / "data", gateway_options={"ready_cache_s": 1.0})
    async with serving(app) as client:
        assert (await add(client, solid(RED))).status_code == 201  # loads the (lazy) model, makes the collection
        await wait_ready(client)  # the start's layout upgrade, which counts, is done
        counted, count = [], EdgeStore.count
        monkeypatch.setattr(EdgeStore, "count", lambda store, flt=None: counted.append(flt) or count(store, flt))
        for _ in range(3):
            assert (await client.get("/readyz")).status_code == 200
        assert counted == []
        embedder = app.state.parts.gallery.embedder
        serves = await embedder.info()

        async def redeployed() -> dict:
            return {**serves, "model": "another-model"}

        monkeypatch.setattr(embedder, "info", redeployed)
        assert (await client.get("/readyz")).status_code == 200  # the answer of a moment ago
        await asyncio.sleep(1.0)
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and "another-model" in ready.json()["reason"], ready.text


async def test_the_openapi_document_says_how_to_authenticate_and_what_an_error_looks_like(tmp_path):
    """A client generated from /openapi.json knows the key headers, which operations need which scope, and reads
    every error as {"detail", "code"} (the integrator's 422s were FastAPI's list shape; 401, 403, 429 undescribed)."""
    from dogsearch.core.access import ApiKey
    from tests.fakes import fake_all_in_one, serving

    keys = [ApiKey.make("boss", "admin", "dgs_" + "a" * 40).entry]
    app = fake_all_in_one(tmp_path / "data", gateway_options={"api_keys": keys, "anonymous_search": True})
    async with serving(app) as client:
        doc = (await client.get("/openapi.json")).json()
    assert set(doc["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    add, search_op = doc["paths"]["/v1/dogs"]["post"], doc["paths"]["/v1/search"]["post"]
    assert add["security"] == [{"ApiKey": []}, {"Bearer": []}] and "**write** scope" in add["description"]
    assert {} in search_op["security"]  # anonymous searches allowed here
    for operation in (add, search_op, doc["paths"]["/v1/dogs/{dog_id}"]["get"]):
        error = {"$ref": "#/components/schemas/Error"}
        assert operation["responses"]["default"]["content"]["application/json"]["schema"] == error
        assert operation["responses"]["422"]["content"]["application/json"]["schema"] == error
    async with serving(fake_all_in_one(tmp_path / "open")) as client:  # no keys: no door to describe
        assert "securitySchemes" not in (await client.get("/openapi.json")).json()["components"]
