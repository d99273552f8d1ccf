"""What several commands share: where the gallery is (a running gateway, or one started in this process)."""
from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """The CLI as a client of a running gateway (--url)."""

    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_CLIENT_", extra="ignore")

    api_key: SecretStr | None = None  # a gateway API key (dogsearch keys add): a secret, so not a flag's default


def check_environment() -> None:
    """Stops a server or worker whose environment sets a DOGSEARCH_<SERVICE>_ variable that no settings class
    reads (every service's classes: compose hands all services one env file)."""
    import os

    from dogsearch.core.settings import unknown_settings
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.services.embedder.settings import EmbedderSettings
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.pose.settings import PoseSettings
    from dogsearch.services.search.settings import SearchSettings
    from dogsearch.services.server import ServerSettings

    classes = (GatewaySettings, EmbedderSettings, SearchSettings, PoseSettings, JobsSettings, ServerSettings,
               ClientSettings)
    if unknown := unknown_settings(classes, os.environ):
        raise SystemExit(f"dogsearch: no setting is named {', '.join(unknown)}: fix or remove it "
                         "(README, \"Settings\")")


def add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="a running gateway (e.g. http://127.0.0.1:8000); default: in this process")
    parser.add_argument("--data-dir", type=Path, default=Path(".data"),
                        help="in-process: the data directory (default .data)")
    parser.add_argument("--api-key-file", type=Path,
                        help="with --url: a file holding the gateway API key to send (default: the environment's "
                             "DOGSEARCH_CLIENT_API_KEY)")


def api_key(key_file: Path | None) -> str | None:
    """The key to send: the file's (first line), else DOGSEARCH_CLIENT_API_KEY; kept off the command line, where
    other users of the machine could read it."""
    if key_file is not None:
        lines = key_file.read_text().split()
        return lines[0] if lines else None
    secret = ClientSettings().api_key
    return secret.get_secret_value() if secret else None


@asynccontextmanager
async def gateway(url: str | None, data_dir: Path | None = None, *, key: str | None = None,
                  **all_in_one: Any) -> AsyncIterator[Any]:
    """A GatewayClient of the gateway at `url` (sending `key`), or else of every service started in this process on
    `data_dir` (`all_in_one`: create_all_in_one's options), its lifespan running until the block ends."""
    from dogsearch.services.gateway.client import GatewayClient

    if url:
        client = GatewayClient(url, timeout=600, token=key)
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
