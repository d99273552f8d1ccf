from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, HttpUrl, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from dogsearch.core.settings import ServiceSettings, checked_internal_key, internal_key_field
from dogsearch.search.contract import Quantization


class SearchSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_SEARCH_", extra="forbid", populate_by_name=True)

    data_dir: Path = Field(Path(".data/search"), description="where the embedded engine keeps the collection")
    collection: str = Field("dogs", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    optimize_after: int = Field(2000, ge=1, description="rebuild the HNSW index once this many points changed...")
    optimize_idle_s: float = Field(10.0, ge=0, description="...and no write came for this long")
    max_k: int = Field(1000, ge=1)
    min_free_bytes: int = Field(
        64 << 20, ge=0, description="embedded engine: writes answer 507 while its disk has less free (on a full disk "
                                    "the engine hangs in its write-ahead log instead of failing)")
    internal_key: SecretStr | None = internal_key_field("DOGSEARCH_SEARCH_")
    # The embedded engine's index and search (docs/scaling.md has the measurements behind the defaults).
    hnsw_ef: int | None = Field(None, ge=1, le=4096, description="embedded engine: HNSW search breadth (None: the "
                                "engine's default, 100); larger finds more of the true top k, slower")
    quantization: Quantization = Field(
        "none", description="embedded engine: 'int8' keeps an int8 copy of the vectors in RAM and the float32 ones on "
                            "disk, read to rescore; an existing collection is converted at its next index build")
    oversampling: float = Field(2.0, ge=1.0, le=16.0, description="embedded engine with int8: candidates rescored "
                                                                  "with the float32 vectors, as a multiple of k")

    # A Qdrant server (or cluster) instead of the embedded engine: set the URL; data_dir is then unused.
    qdrant_url: str | None = Field(None, description="e.g. http://qdrant:6333; unset: the embedded engine")
    qdrant_api_key: SecretStr | None = None
    qdrant_timeout_s: float = Field(30.0, gt=0)
    # Sent when this service creates the collection (a cluster fixes them then); unset: the server's defaults.
    qdrant_shard_number: int | None = Field(None, ge=1, description="shards the collection is split into")
    qdrant_replication_factor: int | None = Field(None, ge=1, description="copies of each shard")
    qdrant_write_consistency_factor: int | None = Field(
        None, ge=1, description="replicas that must confirm a write before it returns"
    )

    @field_validator("internal_key")
    @classmethod
    def _set(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_internal_key(value)

    @field_validator("qdrant_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            HttpUrl(value)  # fail at start on a malformed URL
        return value

    @model_validator(mode="after")
    def _consistency(self) -> SearchSettings:
        write, replicas = self.qdrant_write_consistency_factor, self.qdrant_replication_factor or 1
        if write is not None and write > replicas:
            raise ValueError(f"qdrant_write_consistency_factor ({write}) cannot exceed the replicas ({replicas})")
        return self

    def engine_options(self) -> dict[str, Any]:
        """The arguments of dogsearch.search.engine's open_engine() and open_store() that these settings say."""
        return {
            "data_dir": self.data_dir,
            "qdrant_url": self.qdrant_url,
            "api_key": self.qdrant_api_key.get_secret_value() if self.qdrant_api_key else None,
            "timeout_s": self.qdrant_timeout_s,
            "shard_number": self.qdrant_shard_number,
            "replication_factor": self.qdrant_replication_factor,
            "write_consistency_factor": self.qdrant_write_consistency_factor,
            "min_free_bytes": self.min_free_bytes,
            "hnsw_ef": self.hnsw_ef,
            "quantization": self.quantization,
            "oversampling": self.oversampling,
        }
