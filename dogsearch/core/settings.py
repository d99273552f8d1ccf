"""Base for each service's settings: one pydantic-settings class per service, env prefix, fail fast."""
from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dogsearch.core.images import DECODE_MEMORY_BYTES, MAX_DECODE_BYTES, DecodeBudget, ImageLimits

LogFormat = Literal["json", "text"]
MAX_DECODE_HELP = ("the most memory one photo's decode may take, estimated from its header (mode, size, format): a "
                   "photo over it is refused with 413 (JPEGs shrink on load; a 5 KB palette PNG can declare 40 MP)")
DECODE_MEMORY_HELP = ("the memory all decodes of this process's service may take at once: a decode waits while "
                      "the others in flight leave too little, 503 after 30 s")


def _device(value: str) -> str:
    if value not in ("cpu", "cuda") and not (value.startswith("cuda:") and value[5:].isdigit()):
        raise ValueError("device must be 'cpu', 'cuda' or 'cuda:N'")
    return value


# Where a model runs; checked at start, so a typo stops the service rather than the first request.
Device = Annotated[str, AfterValidator(_device)]


class StrictSettings(BaseSettings):
    # Subclasses set env_prefix; unknown keyword arguments are a bug, so they fail at start.
    model_config = SettingsConfigDict(extra="forbid", validate_default=True)


class ServiceSettings(StrictSettings):
    """A service's own, its logging included. The jobs' and the HTTP server's settings log nothing of their own (a
    worker logs as the gateway's settings say; a server as its service's): a LOG_LEVEL there would be read by none."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "json"


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads (upper case: pydantic-settings matches them ignoring case)."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str) and c.upper().startswith("DOGSEARCH_")}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


# What Kubernetes sets in every pod for each Service of its namespace: a Service named dogsearch-search gives
# DOGSEARCH_SEARCH_SERVICE_HOST, DOGSEARCH_SEARCH_PORT, DOGSEARCH_SEARCH_PORT_8002_TCP_ADDR, ... (not settings).
_SERVICE_LINK = re.compile(r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$")


def unknown_settings(classes: Iterable[type[BaseSettings]], environ: Mapping[str, str]) -> list[str]:
    """The variables of `environ` under one of the classes' prefixes (DOGSEARCH_GATEWAY_, ...) that none of them
    reads, each with the closest name that one does: a misspelt setting is otherwise ignored, its default used."""
    classes = list(classes)
    prefixes = tuple(p for cls in classes if (p := cls.model_config.get("env_prefix")))
    known = set().union(*(env_names(cls) for cls in classes))
    found = []
    for name in sorted(n.upper() for n in environ):
        if name.startswith(prefixes) and name not in known and not _SERVICE_LINK.search(name):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            found.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return found


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """The cores this process may use: its CPU set, capped by a cgroup v2 CPU quota (a container's `cpus:`
    limit leaves the CPU set whole but allows only quota/period cores' worth of time)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 here: the CPU set is the limit
    return cores


class InferenceSettings(ServiceSettings):
    """What the model services share: where the model runs, how its forwards are spread over the cores, and
    the limits of a request."""

    device: Device = "cpu"
    replicas: int | None = Field(
        None, ge=1, le=256,
        description="batches run at once on the one model, each on its own thread; subclasses choose the default")
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op threads of each replica; default: the cores shared out among the replicas")
    tune_malloc: bool = Field(
        True, description="set glibc's malloc up for torch (one arena, freed memory kept): 1.4-1.8x the CPU "
                          "forward (dogsearch/core/memory.py)")
    batch_max_size: int | None = Field(
        None, ge=1, le=1024, description="dynamic batching: most images in one run; subclasses choose the default")
    batch_max_wait_ms: float = Field(
        1.0, ge=0, le=1000, description="dynamic batching: how long a lone request waits for company; requests that "
                                          "come while batches run join the next one anyway")
    queue_max_images: int = Field(64, ge=1, description="images waiting beyond this get 503 + Retry-After")
    request_timeout_s: float = Field(30.0, gt=0, description="a request waiting longer gets 504")
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    max_decode_bytes: int = Field(MAX_DECODE_BYTES, ge=1024 * 1024, description=MAX_DECODE_HELP)
    decode_memory_bytes: int = Field(DECODE_MEMORY_BYTES, ge=1024 * 1024, description=DECODE_MEMORY_HELP)
    load_retry_s: float = Field(
        5.0, gt=0, description="a model that failed to load (weights unreadable for a moment, a cache another replica "
                               "is filling) is tried again by the next request or readiness probe this long after, "
                               "twice as long after each further failure")
    load_retry_max_s: float = Field(300.0, gt=0, description="the longest wait between two tries of a failed model")

    def image_limits(self) -> ImageLimits:
        """The limits the service decodes photos under, with the budget all its decodes share."""
        return ImageLimits(self.max_image_bytes, self.max_image_pixels, self.max_decode_bytes,
                           DecodeBudget(self.decode_memory_bytes))

    def default_replicas(self) -> int:
        return 1

    def default_batch_max_size(self) -> int:
        return 8

    @model_validator(mode="after")
    def _share_out_the_cores(self) -> InferenceSettings:
        if self.replicas is None:
            self.replicas = self.default_replicas()
        if self.torch_threads is None:
            self.torch_threads = max(1, usable_cores() // self.replicas)
        if self.batch_max_size is None:
            self.batch_max_size = self.default_batch_max_size()
        return self

    def batching(self) -> dict[str, Any]:
        """How the model's requests are batched and run: the keyword arguments of
        dogsearch.inference.runner.BatchedModel."""
        return {"max_batch_size": self.batch_max_size, "max_wait_s": self.batch_max_wait_ms / 1000,
                "max_queue": self.queue_max_images, "timeout_s": self.request_timeout_s,
                "replicas": self.replicas, "torch_threads": self.torch_threads,
                "retry_s": self.load_retry_s, "retry_max_s": self.load_retry_max_s}


def internal_key_field(prefix: str) -> Any:
    """The credential our services ask of each other (SecretStr): `<prefix>INTERNAL_KEY`, or DOGSEARCH_INTERNAL_KEY,
    the one name every service reads, so a deployment sets it once."""
    return Field(None, validation_alias=AliasChoices(f"{prefix}INTERNAL_KEY", "DOGSEARCH_INTERNAL_KEY"),
                 description="the bearer credential between our services (gateway, workers, embedder, search, pose); "
                             "when set, every route but /healthz and /readyz needs it")


def set_secret(value: Any) -> Any:
    """An empty secret (a blank line in .env) is no secret."""
    return value if value is not None and value.get_secret_value() else None


MIN_INTERNAL_KEY = 16  # characters: a key between services is made, not typed ("secret" is guessed)


def checked_internal_key(value: Any) -> Any:
    """The internal key (set_secret), refused when too short to be more than a guessable word."""
    value = set_secret(value)
    if value is not None and len(value.get_secret_value()) < MIN_INTERNAL_KEY:
        raise ValueError(f"DOGSEARCH_INTERNAL_KEY: at least {MIN_INTERNAL_KEY} characters; make one with "
                         "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return value
