"""The web UI (web/, built by Vite into web/dist) served by the gateway: index.html at /, hashed assets under
/assets. The UI routes in the URL's #fragment, so no server-side fallback route is needed."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from dogsearch.core.paths import WEB_DIST

# The repository's build output; GatewaySettings.web_dir points elsewhere when installed differently.
DEFAULT_WEB_DIR = WEB_DIST

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dogsearch: web UI not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem">
<h1>The dogsearch web UI is not built</h1>
<p>No <code>{index}</code> here. Build it with <code>make setup</code>
(or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>), then reload this page.</p>
<p>The API works without it: <a href="/docs">/docs</a>.</p>
</body></html>
"""


# The UI's page may load only its own scripts, styles and data (images also from blob: URLs, which it makes of the
# photos it fetches with a key, and data: for its icon), and no other site may frame it: an injected script or a
# clickjacking frame finds nothing to work with, while the UI keeps a key in sessionStorage.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Every answer: a served photo or JSON is never sniffed as something else, never framed, and leaks no referrer.
_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer")]


# An answer without a Cache-Control of its own (a key's jobs, watches, dogs) is stored by no cache: a shared one that
# ignores the key would give it to other callers. Routes that may be cached say so (photos: private, no-cache).
_NOT_STORED = (b"cache-control", b"no-store")


class SecurityHeaders:
    """Adds _HEADERS to every HTTP answer, and _NOT_STORED to one without a Cache-Control (pure ASGI: nothing is
    buffered)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), *_HEADERS]
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_NOT_STORED)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, sending)


def install_web(app: FastAPI, web_dir: Path) -> None:
    index = web_dir / "index.html"
    assets = (web_dir / "assets").resolve()

    @app.get("/", include_in_schema=False)
    async def web_index():
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT.format(index=index), status_code=503)
        # Always revalidate: index.html names the current hashed assets.
        return FileResponse(index, media_type="text/html",
                            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})

    # Looked up per request (not a mount checked at start): the UI may be built while the server runs.
    @app.get("/assets/{name:path}", include_in_schema=False)
    async def web_asset(name: str) -> FileResponse:
        path = (assets / name).resolve()
        if not path.is_relative_to(assets) or not path.is_file():
            raise HTTPException(404, f"no web asset {name!r}")
        # Vite puts a content hash in every asset name: safe to cache for good.
        return FileResponse(path, headers={"Cache-Control": "public, max-age=31536000, immutable"})
