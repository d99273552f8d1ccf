"""What the gateway exposes for operators."""
from __future__ import annotations

from tests.gateway.helpers import RED, add
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
