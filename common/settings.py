"""Base for each service's settings: one pydantic-settings class per service, env prefix, fail fast."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogFormat = Literal["json", "text"]


def _device(value: str) -> str:
    if value not in ("cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise ValueError("device must be 'cpu', 'cuda' or 'cuda:N'")
    return value


# Where a model runs; checked at start, so a typo stops the service rather than the first request.
Device = Annotated[str, AfterValidator(_device)]


class ServiceSettings(BaseSettings):
    # Subclasses set env_prefix; unknown keyword arguments are a bug, so they fail at start.
    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "json"
