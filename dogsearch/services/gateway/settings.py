from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, HttpUrl, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from dogsearch.core.images import MAX_DECODE_BYTES
from dogsearch.core.settings import DECODE_MEMORY_HELP, MAX_DECODE_HELP, ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_GATEWAY_", extra="forbid")

    data_dir: Path = Field(Path(".data/photos"), description="where uploaded photos and thumbnails are kept")
    embedder_url: str = Field("http://127.0.0.1:8001", description="embedder service base URL (separate processes)")
    search_url: str = Field("http://127.0.0.1:8002", description="search service base URL (separate processes)")
    pose_url: str = Field("http://127.0.0.1:8003", description="pose service base URL (separate processes)")
    pose_rerank_weight: float = Field(0.1, ge=0, description="rerank=pose: score minus this x proportion gap")
    pose_rerank_depth: int = Field(3, ge=1, le=10, description="rerank=pose: re-order the best k x this many")
    upstream_timeout_s: float = Field(60.0, gt=0)
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    max_decode_bytes: int = Field(MAX_DECODE_BYTES, ge=1024 * 1024, description=MAX_DECODE_HELP)
    decode_memory_bytes: int = Field(2 * MAX_DECODE_BYTES, ge=1024 * 1024, description=DECODE_MEMORY_HELP)
    thumbnail_px: int = Field(256, ge=32, le=2048)
    max_k: int = Field(100, ge=1, le=1000)
    max_page: int = Field(100, ge=1, le=1000)
    web_dir: Path | None = Field(None, description="the built web UI served at / (default: the repository's web/dist)")
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("api_key", "DOGSEARCH_API_KEY", "DOGSEARCH_GATEWAY_API_KEY"),
        description="when set, every write endpoint needs it (X-API-Key header or Authorization: Bearer)",
    )
    rate_limit_per_minute: int = Field(0, ge=0, description="calls per client per minute on average; 0 = no limit")
    rate_limit_burst: int = Field(60, ge=1)
    cors_origins: list[str] = Field(default_factory=list, description='web origins allowed, e.g. ["https://a.b"]')

    @field_validator("embedder_url", "search_url", "pose_url")
    @classmethod
    def _url(cls, value: str) -> str:
        HttpUrl(value)  # fail at start on a malformed URL, not at the first request
        return value.rstrip("/")
