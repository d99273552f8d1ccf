"""Base for each service's settings: one pydantic-settings class per service, env prefix, fail fast."""
from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["json", "text"]


class ServiceSettings(BaseSettings):
    # Subclasses set env_prefix; unknown keyword arguments are a bug, so they fail at start.
    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "json"
