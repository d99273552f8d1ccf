from __future__ import annotations

from pydantic import BaseModel, Field


class ModelInfo(BaseModel):
    model: str
    dim: int
    device: str
    precision: str
    data_config: dict


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]] | list[str] = Field(
        ..., description="one per image, in order: numbers, or with ?encoding=base64 the base64 of dim "
                         "little-endian float32 values")
