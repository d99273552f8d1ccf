from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from dogsearch.core.settings import StrictSettings
from dogsearch.jobs.sources import FieldLimits


class JobsSettings(StrictSettings):
    """Where jobs run and what they may read. Workers build their ingest side from GatewaySettings
    (DOGSEARCH_GATEWAY_*: embedder/search URLs, photo directory), so they store photos exactly as the gateway does."""

    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_JOBS_", extra="forbid", populate_by_name=True)

    broker_url: str | None = Field(
        None, validation_alias=AliasChoices("DOGSEARCH_BROKER_URL", "broker_url"),
        description="redis://host:port/db: Celery broker and job state; unset: jobs run in-process (embedded)")
    data_dir: Path = Field(Path(".data/jobs"), description="embedded mode: job state (SQLite); uploads in both modes")
    upload_dir: Path | None = Field(None, description="where uploaded zips are unpacked (default DATA_DIR/uploads); "
                                                      "with separate workers it must be a folder they can read")
    allowed_roots: list[Path] = Field(
        default_factory=list, description="server folders POST /v1/jobs/index may read (JSON list); empty: none")
    batch_size: int = Field(32, ge=1, le=1024, description="photos per embedder call")
    require_dog: bool = Field(True, description="a photo in which the embedder's detector finds no dog fails (\"no "
                                                "dog found in this photo\"); false: its whole photo is the dog")
    local_concurrency: int = Field(2, ge=1, le=16, description="embedded mode: batches in flight")
    visibility_timeout_s: int = Field(
        3600, ge=1, description="Redis: an unacknowledged batch goes to another worker after this long")
    retry_window_s: int = Field(
        600, ge=0, description="how long a batch whose embedder or search service is down or busy (a redeploy) "
                               "tries again, every few seconds, before its files fail")
    check_retry_window_s: int = Field(
        86400, ge=0, description="how long a check of new dogs against the watches whose search service is down or "
                                 "busy tries again before it is given up (kept with its dogs, logged): a missed "
                                 "alert costs far more than a small message waiting")
    max_archive_bytes: int = Field(1024**3, ge=1024, description="largest zip upload")
    max_archive_files: int = Field(200_000, ge=1)
    max_unpacked_bytes: int = Field(8 * 1024**3, ge=1024, description="all files of one zip, unpacked")
    max_compression_ratio: float = Field(200.0, gt=1, description="per file: a zip bomb unpacks far beyond this")
    max_listed_errors: int = Field(1000, ge=0, description="errors kept per job (the count is always exact)")
    max_deliveries: int = Field(
        3, ge=1, description="a batch (or a check of new dogs against the watches) whose worker died running it this "
                             "many times fails instead of running again")
    stall_timeout_s: int = Field(
        7200, ge=0, description="a job with no file finished for this long (queued behind other jobs too: keep it "
                                "above the longest wait) is planned again where a broker is set (a batch lost to a "
                                "Redis crash), and fails when it stalls again; embedded, it fails; 0: never")
    min_free_bytes: int = Field(
        1024**3, ge=0, description="a zip upload is refused when unpacking it would leave less free disk than this")
    max_fields_bytes: int = Field(
        16 * 1024, ge=256, description="a dog's fields from a job (payload and manifest row), as JSON: they are "
                                       "copied into every point and batch message")
    max_cell_bytes: int = Field(4096, ge=64, description="one manifest cell (a CSV value or a JSONL field)")
    max_manifest_columns: int = Field(64, ge=1, description="columns of a CSV manifest, keys of a JSONL row")
    max_manifest_bytes: int = Field(64 * 1024**2, ge=1024, description="a manifest file (read whole at submit)")

    @field_validator("broker_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("broker_url must be a redis:// URL (Redis is both broker and job state)")
        return value or None

    @field_validator("allowed_roots")
    @classmethod
    def _absolute(cls, value: list[Path]) -> list[Path]:
        return [p.expanduser().resolve() for p in value]

    @property
    def uploads(self) -> Path:
        return self.upload_dir or self.data_dir / "uploads"

    @property
    def field_limits(self) -> FieldLimits:
        return FieldLimits(self.max_fields_bytes, self.max_cell_bytes, self.max_manifest_columns,
                           self.max_manifest_bytes)
