from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from dogsearch.services.ops import install_ops


def make_app(service: str = "t") -> FastAPI:
    app = FastAPI()

    async def ready():
        return None

    install_ops(app, service, ready, max_request_bytes=1000, body_limits={"/big": 5000})

    @app.post("/echo")
    @app.post("/big")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    return app


async def test_body_limit_by_content_length_and_while_streaming():
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/echo", content=b"x" * 1000)).json() == {"bytes": 1000}
        declared = await client.post("/echo", content=b"x" * 1001)
        assert declared.status_code == 413 and "too large" in declared.json()["detail"]
        assert declared.json()["code"] == "too_large"

        async def chunks():  # no Content-Length: the limit is found while reading
            for _ in range(5):
                yield b"y" * 300

        streamed = await client.post("/echo", content=chunks())
        assert streamed.status_code == 413 and "too large" in streamed.json()["detail"]
        # A path with a limit of its own.
        assert (await client.post("/big", content=b"z" * 4000)).json() == {"bytes": 4000}
        assert (await client.post("/big", content=b"z" * 5001)).status_code == 413



async def test_a_json_body_has_a_smaller_limit_than_a_form():
    app = FastAPI()

    async def ready():
        return None

    install_ops(app, "t", ready, max_request_bytes=5000, json_bytes=1000)

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    form = {"content-type": "multipart/form-data; boundary=xx"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.post("/echo", content=b"x" * 4000, headers=form)).json() == {"bytes": 4000}
        assert (await client.post("/echo", content=b'"' + b"x" * 998 + b'"')).json() == {"bytes": 1000}
        for headers in ({"content-type": "application/json"}, {"content-type": "text/plain"}, {}):
            over = await client.post("/echo", content=b"x" * 1001, headers=headers)
            assert over.status_code == 413 and "over 1000 bytes" in over.json()["detail"], headers

        async def chunks():  # no Content-Length: refused while reading, before the app has it whole
            for _ in range(5):
                yield b"y" * 300

        assert (await client.post("/echo", content=chunks())).status_code == 413
        lone = await client.post("/echo", content=b'{"a": "\\ud800"}')
        assert (lone.status_code, lone.json()["code"]) == (422, "malformed_body") and "lone surrogate" in lone.text
        escaped = await client.post("/echo", content=b'{"a": "\\\\ud800"}')  # a backslash, then "ud800": text
        assert escaped.json() == {"bytes": 16}

async def test_health_ready_and_metrics():
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": "t"}
        assert (await client.get("/readyz")).status_code == 200
        for path in ("/healthz", "/readyz"):  # as uptime checkers ask
            head = await client.head(path)
            assert head.status_code == 200 and head.content == b"", path
        await client.post("/echo", content=b"abc")
        assert 'route="/echo",service="t",status="200"' in (await client.get("/metrics")).text


async def test_metrics_count_refusals_and_crashes_by_route():
    app = make_app("crashy")  # a service name of its own: the metrics registry is the process's

    @app.get("/boom/{n}")
    async def boom(n: int) -> dict:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/boom/1")).status_code == 500
        assert (await client.post("/echo", content=b"x" * 2000)).status_code == 413
        assert (await client.get("/nowhere")).status_code == 404
        metrics = (await client.get("/metrics")).text
    assert 'method="GET",route="/boom/{n}",service="crashy",status="500"' in metrics
    # Refused from its Content-Length before any route was matched.
    assert 'method="POST",route="unmatched",service="crashy",status="413"' in metrics
    assert 'method="GET",route="unmatched",service="crashy",status="404"' in metrics
