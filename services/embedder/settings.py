from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import Device, ServiceSettings


class EmbedderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_EMBEDDER_", extra="forbid")

    model: str = Field("efficientnet_lite0", description="'efficientnet_lite0' (registry weights), 'vit_small_dinov2', "
                                                     "a trained head in models/, or a timm name")
    weights_path: str | None = Field(None, description="local weights file instead of the registry package / hub")
    cache_dir: str = Field("~/.cache/dogsearch", description="weights converted from registry packages (ViT)")
    device: Device = "cpu"
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    preload: bool = Field(True, description="load the model at start-up rather than on the first request")
    max_batch: int = Field(64, ge=1, le=1024, description="most images one /v1/embed request may carry")
    batch_max_size: int | None = Field(
        None, ge=1, le=1024,
        description="dynamic batching: most images in one forward; default 8 on a CPU (per image the fastest here: "
                    "bigger batches fall out of the caches), 32 on a GPU")
    batch_max_wait_ms: float = Field(
        1.0, ge=0, le=1000, description="dynamic batching: how long a lone request waits for company; requests that "
                                          "come while a batch runs join the next one anyway")
    queue_max_images: int = Field(512, ge=1, description="images waiting beyond this get 503 + Retry-After")
    request_timeout_s: float = Field(30.0, gt=0, description="a request waiting longer gets 504")
    max_image_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=10_000)
    torch_threads: int | None = Field(None, ge=1, description="intra-op threads; default: torch's choice")

    @model_validator(mode="after")
    def _batch_for_the_device(self) -> EmbedderSettings:
        if self.batch_max_size is None:
            self.batch_max_size = 8 if self.device == "cpu" else 32
        return self
