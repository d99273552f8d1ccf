"""The gateway serves the built web UI at / and its assets, and explains how to build it when it is missing."""
from __future__ import annotations

import pytest

from tests.fakes import fake_all_in_one, serving


@pytest.fixture
async def client_for(tmp_path):

    async def make(web_dir):
        app = fake_all_in_one(tmp_path / "data", gateway_options={"web_dir": web_dir})
        return app

    yield make


async def _get(app, *paths):
    async with serving(app) as client:
        return [await client.get(p) for p in paths]


async def test_serves_index_and_assets(tmp_path, client_for):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script src="/assets/app-1.js"></script>')
    (dist / "assets" / "app-1.js").write_text("console.log('dogsearch')")
    (tmp_path / "secret.txt").write_text("not served")

    index, asset, api, missing, escape = await _get(
        await client_for(dist), "/", "/assets/app-1.js", "/v1/dogs", "/assets/nope.js", "/assets/..%2F..%2Fsecret.txt")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "/assets/app-1.js" in index.text and index.headers["cache-control"] == "no-cache"
    assert asset.status_code == 200 and asset.text == "console.log('dogsearch')"
    assert "javascript" in asset.headers["content-type"]
    assert api.status_code == 200 and api.json()["total"] == 0  # the API is untouched
    assert missing.status_code == 404
    assert escape.status_code == 404 and "not served" not in escape.text


async def test_missing_build_says_how_to_build(tmp_path, client_for):
    index, asset, api = await _get(await client_for(tmp_path / "no-dist"), "/", "/assets/app.js", "/v1/dogs")
    assert index.status_code == 503
    assert "make setup" in index.text and "npm run build" in index.text and "/docs" in index.text
    assert asset.status_code == 404
    assert api.status_code == 200


async def test_the_page_may_run_only_its_own_scripts_and_no_answer_is_sniffed_or_framed(tmp_path):
    from dogsearch.core.access import ApiKey

    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<!doctype html>")
    admin = ApiKey.make("admin", "admin", "dgs_" + "a" * 40)
    app = fake_all_in_one(tmp_path / "data", gateway_options={"web_dir": dist, "api_keys": [admin.entry]})
    index, refused, health = await _get(app, "/", "/v1/dogs", "/healthz")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert refused.status_code == 401  # refused before any route: the headers still come
    for answer in (index, refused, health):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["referrer-policy"] == "no-referrer"
