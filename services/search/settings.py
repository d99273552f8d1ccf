from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class SearchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_SEARCH_", extra="forbid")

    data_dir: Path = Field(Path(".data/search"), description="where the embedded engine keeps the collection")
    collection: str = Field("dogs", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    optimize_after: int = Field(2000, ge=1, description="rebuild the HNSW index once this many points changed...")
    optimize_idle_s: float = Field(10.0, ge=0, description="...and no write came for this long")
    max_k: int = Field(1000, ge=1)
