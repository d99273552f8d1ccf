from __future__ import annotations

from pydantic import BaseModel


class ModelInfo(BaseModel):
    model: str
    dim: int
    device: str
    precision: str
    data_config: dict


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float]]
