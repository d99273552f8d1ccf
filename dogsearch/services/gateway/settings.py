from __future__ import annotations

import json
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, HttpUrl, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from dogsearch.core.access import ApiKey, InvalidKeyEntry, Keyring, read_entries
from dogsearch.core.images import DECODE_MEMORY_BYTES, MAX_DECODE_BYTES
from dogsearch.core.settings import (
    DECODE_MEMORY_HELP,
    MAX_DECODE_HELP,
    ServiceSettings,
    checked_internal_key,
    internal_key_field,
    set_secret,
)
from dogsearch.gallery.expansion import Expansion
from dogsearch.gallery.multiquery import Rule


def _list(value: Any) -> Any:
    """A list setting from the environment: a JSON list, or items separated by commas or new lines."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
    return value


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_GATEWAY_", extra="forbid", populate_by_name=True)

    data_dir: Path = Field(Path(".data/photos"), description="where uploaded photos and thumbnails are kept")
    embedder_url: str = Field("http://127.0.0.1:8001", description="embedder service base URL (separate processes)")
    search_url: str = Field("http://127.0.0.1:8002", description="search service base URL (separate processes)")
    pose_url: str = Field("http://127.0.0.1:8003", description="pose service base URL (separate processes)")
    pose_rerank_weight: float = Field(0.1, ge=0, description="rerank=pose: score minus this x proportion gap")
    pose_rerank_depth: int = Field(3, ge=1, le=10, description="rerank=pose: re-order the best k x this many")
    pose_search_max: int = Field(
        10, ge=1, le=1000,
        description="the most stored dogs one search poses, each a pose call on its whole stored photo: rerank=pose "
                    "re-orders at most the best this many, pose=true gives the first this many results their pose "
                    "(docs/pose.md)")
    upstream_timeout_s: float = Field(60.0, gt=0)
    ready_cache_s: float = Field(1.0, ge=0, le=60, description="/readyz keeps its checks of the services this long: "
                                                              "a flood of probes asks them no more often")
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    upload_memory_bytes: int = Field(
        128 * 1024 * 1024, ge=1024 * 1024,
        description="the photos' bytes all requests may hold in memory at once (searches, adds, poses, watches): a "
                    "request waits for its photos' share, then is answered 503 with Retry-After")
    max_json_bytes: int = Field(256 * 1024, ge=1024, description="any request body but a multipart form (JSON, "
                                "parsed whole at ~50x its size in memory): the largest one sent is a job's path "
                                "(4096 characters) and payload (DOGSEARCH_JOBS_MAX_FIELDS_BYTES), escaped")
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    max_decode_bytes: int = Field(MAX_DECODE_BYTES, ge=1024 * 1024, description=MAX_DECODE_HELP)
    decode_memory_bytes: int = Field(DECODE_MEMORY_BYTES, ge=1024 * 1024, description=DECODE_MEMORY_HELP)
    thumbnail_px: int = Field(256, ge=32, le=2048)
    max_k: int = Field(100, ge=1, le=1000)
    require_dog: bool = Field(True, description="a photo in which the embedder's detector finds no dog is refused "
                                                "(422 no_dog_found) by search, add and a pose without a box; false: "
                                                "its whole photo is the dog")
    max_page: int = Field(100, ge=1, le=1000)
    max_query_photos: int = Field(5, ge=1, le=20, description="photos of one dog a search may combine (`image` "
                                                              "repeated in POST /v1/search)")
    query_combine: Rule = Field("mean", description="how a search's several photos score an entry: mean (of their "
                                                    "cosines) or max (docs/lost-and-found.md)")
    query_expansion: int = Field(
        0, ge=0, le=10,
        description="a search and 'more like this' rank by their query plus this many of its nearest stored photos: "
                    "more of a breed's look-alikes in the list, but a dog whose first result is wrong falls further "
                    "down it (0: the plain query; docs/embedder-eval.md, 'Query expansion')")
    query_expansion_power: float = Field(Expansion.power, ge=0, le=10,
                                         description="each of those photos weighs its cosine to this power "
                                                     "(0: all alike)")
    web_dir: Path | None = Field(None, description="the built web UI served at / (default: the repository's web/dist)")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="API keys as name:scope:sha256hex (scope search, write or admin), a JSON list or comma-separated; "
                    "make one with `dogsearch keys add NAME --scope SCOPE`. None here or in the file: open access "
                    "(allowed on a loopback address only)")
    api_keys_file: Path | None = Field(None, description="a file of API keys: one name:scope:sha256hex a line, "
                                                         "# comments")
    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DOGSEARCH_API_KEY", "DOGSEARCH_GATEWAY_API_KEY"),
        description="deprecated: one secret, taken as an admin key named 'admin' (use API_KEYS)",
    )
    anonymous_search: bool = Field(False, description="let callers without a key search and read dogs (when keys "
                                                      "are configured)")
    require_keys: bool = Field(False, description="refuse to start without an admin key even on a loopback address "
                                                  "(the compose file sets it)")
    internal_key: SecretStr | None = internal_key_field("DOGSEARCH_GATEWAY_")
    rate_limit_per_minute: int = Field(0, ge=0, description="calls per client per minute on average; 0 = no limit")
    rate_limit_burst: int = Field(60, ge=1)
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="reverse proxies (CIDRs) whose X-Forwarded-For is believed: the client is the rightmost address "
                    "not in them; empty: the peer address is the client")
    cors_origins: list[str] = Field(default_factory=list, description='web origins allowed, e.g. ["https://a.b"]')
    same_dog_likely: float = Field(0.9, gt=0, lt=1, description="a result whose same_dog probability is at least "
                                                                "this is a likely match (verdict likely)")
    same_dog_possible: float = Field(0.5, gt=0, lt=1, description="at least this (and below same_dog_likely): "
                                                                  "verdict possible; below: unlikely")
    same_dog_prior: float = Field(0.5, gt=0, lt=1, description="the share of same-dog pairs before the score is seen; "
                                                               "0.5 (the calibration's own): the score alone decides")
    calibration_dir: Path | None = Field(None, description="where models/<model>/calibration.json are looked for "
                                                           "(default: the repository's models/)")
    # Watches (alerts on new matches) and their webhooks (docs/lost-and-found.md, Watches).
    watches_path: Path | None = Field(None, description="the watches' SQLite file (default: watches/watches.sqlite3 "
                                                        "beside DATA_DIR); Celery workers must open the same file")
    max_watches_per_key: int = Field(100, ge=1, description="watches one API key may have open")
    max_watch_photos: int = Field(5, ge=1, le=20, description="photos a watch may be made from")
    webhook_allow_private: bool = Field(False, description="let webhooks go to loopback, private, link-local and "
                                                           "other non-public addresses (tests, closed networks)")
    webhook_timeout_s: float = Field(5.0, gt=0, le=60, description="one delivery attempt's time")
    webhook_max_attempts: int = Field(6, ge=1, le=20, description="attempts of a delivery before it fails")
    webhook_backoff_s: float = Field(2.0, gt=0, description="the wait after the first failed attempt; doubled "
                                                            "after each next one (at most 10 minutes)")
    webhook_poll_s: float = Field(1.0, gt=0, le=60, description="how often deliveries recorded by other processes "
                                                                "(Celery workers) are looked for")
    webhook_max_response_bytes: int = Field(65536, ge=0, description="a webhook's answer is read up to this much, "
                                                                     "then dropped")

    _keyring: Keyring | None = PrivateAttr(None)

    @field_validator("embedder_url", "search_url", "pose_url")
    @classmethod
    def _url(cls, value: str) -> str:
        HttpUrl(value)  # fail at start on a malformed URL, not at the first request
        return value.rstrip("/")

    @field_validator("api_keys", "trusted_proxies", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _list(value)

    @field_validator("api_key")
    @classmethod
    def _set(cls, value: SecretStr | None) -> SecretStr | None:
        return set_secret(value)

    @field_validator("internal_key")
    @classmethod
    def _internal(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_internal_key(value)

    @model_validator(mode="after")
    def _thresholds(self) -> GatewaySettings:
        if not self.same_dog_possible < self.same_dog_likely:
            raise ValueError(f"same_dog_possible ({self.same_dog_possible}) must be below same_dog_likely "
                             f"({self.same_dog_likely})")
        return self

    @field_validator("api_keys")
    @classmethod
    def _entries(cls, value: list[str]) -> list[str]:
        for entry in value:
            ApiKey.parse(entry)  # a bad entry stops the service at start
        return value

    @property
    def keyring(self) -> Keyring:
        """The keys of the setting, the file and the deprecated single key, read when first asked: at the gateway's
        start (a bad line, an unreadable file or a name given twice stops it: InvalidKeyEntry), never by a worker,
        which reads these settings too but has no keys file mounted."""
        if self._keyring is None:
            entries = list(self.api_keys)
            if self.api_keys_file is not None:
                try:
                    entries += read_entries(self.api_keys_file)
                except OSError as exc:
                    raise InvalidKeyEntry(f"api_keys_file {self.api_keys_file}: {exc.strerror or exc}") from None
            keys = [ApiKey.parse(entry) for entry in entries]
            if self.api_key is not None:
                keys.append(ApiKey.make("admin", "admin", self.api_key.get_secret_value()))
            self._keyring = Keyring(keys)
        return self._keyring

    @property
    def expansion(self) -> Expansion:
        return Expansion(self.query_expansion, self.query_expansion_power)

    @property
    def watches_file(self) -> Path:
        return self.watches_path or self.data_dir.parent / "watches" / "watches.sqlite3"

    @property
    def internal_secret(self) -> str | None:
        return self.internal_key.get_secret_value() if self.internal_key else None
