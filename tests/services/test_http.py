"""The services' HTTP clients (dogsearch/services/http.py) as they meet what stands between services in a scaled-out
deployment: a load balancer or proxy in front of replicas."""
from __future__ import annotations

import pytest
from starlette.responses import HTMLResponse, JSONResponse

from dogsearch.services.embedder.client import EmbedderClient


def answering(response):
    """An ASGI app that answers every request with `response` (what a proxy says when no replica is up)."""
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await response(scope, receive, send)
    return app


@pytest.mark.parametrize("answer, said", [
    (HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502), "embedder: HTTP 502"),
    (JSONResponse(["no", "replica"], 503), "embedder: HTTP 503"),  # JSON, but not ours
    (JSONResponse({"status": "not ready", "reason": "model loading"}, 503), "embedder: model loading"),
])
async def test_a_not_ready_answer_from_a_proxy_is_a_reason_not_a_crash(answer, said):
    client = EmbedderClient("http://lb", app=answering(answer))
    try:
        assert await client.ready() == said
    finally:
        await client.aclose()


async def test_the_gateway_behind_a_proxy_whose_replicas_are_down_is_not_ready_and_says_why(tmp_path):
    # Embedder replicas behind a load balancer, all down (a rolling restart gone wrong): the balancer answers its own
    # 502 page. The gateway's /readyz crashed on it (a 500 and a traceback every probe) instead of saying 503 why.
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.services.gateway.app import create_app
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.search.app import create_app as create_search
    from dogsearch.services.search.client import SearchClient
    from dogsearch.services.search.settings import SearchSettings
    from tests.fakes import serving

    search = create_search(SearchSettings(data_dir=tmp_path / "vectors"))
    proxy = answering(HTMLResponse("<html><body><h1>502 Bad Gateway</h1></body></html>", 502))
    gateway = create_app(GatewaySettings(data_dir=tmp_path / "photos"),
                         embedder=EmbedderClient("http://embedder-lb", app=proxy),
                         search=SearchClient("http://search", app=search), sub_apps=(search,),
                         jobs_settings=JobsSettings(data_dir=tmp_path / "jobs"))
    async with serving(gateway) as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 503, ready.text
    assert "embedder: HTTP 502" in ready.json()["reason"]
