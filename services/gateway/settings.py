from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, field_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_GATEWAY_", extra="forbid")

    data_dir: Path = Field(Path(".data/photos"), description="where uploaded photos and thumbnails are kept")
    embedder_url: str = Field("http://127.0.0.1:8001", description="embedder service base URL (separate processes)")
    search_url: str = Field("http://127.0.0.1:8002", description="search service base URL (separate processes)")
    upstream_timeout_s: float = Field(60.0, gt=0)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    thumbnail_px: int = Field(256, ge=32, le=2048)
    max_k: int = Field(100, ge=1, le=1000)
    max_page: int = Field(100, ge=1, le=1000)

    @field_validator("embedder_url", "search_url")
    @classmethod
    def _url(cls, value: str) -> str:
        HttpUrl(value)  # fail at start on a malformed URL, not at the first request
        return value.rstrip("/")
