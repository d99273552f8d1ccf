"""What several commands share: where the gallery is (a running gateway, or one started in this process)."""
from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


def add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running gateway (e.g. http://127.0.0.1:8000); default: in this process")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="in-process: the data directory (default .data)")


@asynccontextmanager
async def gateway(url: str | None, data_dir: Path | None = None, **all_in_one: Any) -> AsyncIterator[Any]:
    """A GatewayClient of the gateway at `url`, or else of every service started in this process on `data_dir`
    (`all_in_one`: create_all_in_one's options), its lifespan running until the block ends."""
    from dogsearch.services.gateway.client import GatewayClient

    if url:
        client = GatewayClient(url, timeout=600)
        try:
            yield client
        finally:
            await client.aclose()
        return
    from dogsearch.core.memory import frozen_once_started
    from dogsearch.services.allinone import create_all_in_one

    app = frozen_once_started(create_all_in_one(data_dir, **all_in_one))
    async with app.router.lifespan_context(app):
        client = GatewayClient("http://dogsearch", app=app, timeout=600)
        try:
            yield client
        finally:
            await client.aclose()
