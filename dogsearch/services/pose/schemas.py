"""The pose API's JSON (the contract the web UI is built against)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Keypoint(BaseModel):
    name: str
    x: float
    y: float
    score: float


class Measure(BaseModel):
    value: float | None
    confidence: float


class Proportions(BaseModel):
    leg_to_body: Measure
    head_to_body: Measure
    tail_to_body: Measure


class Posture(BaseModel):
    label: Literal["standing", "sitting", "lying", "unknown"]
    confidence: float


class Analysis(BaseModel):
    proportions: Proportions
    posture: Posture
    visible_share: Measure


class Dog(BaseModel):
    box: list[float]
    score: float
    given: bool = Field(False, description="the box came with the request (score 1): no detector judged it")
    whole_photo: bool = Field(False, description="the dog's box is the whole photo (none was found within it, or it "
                                                 "was marked so): where the photo is a close-up of its face the "
                                                 "body's keypoints are guesses; draw and compare none of them")
    keypoints: list[Keypoint]
    analysis: Analysis


class PoseResponse(BaseModel):
    model: str
    width: int
    height: int
    dogs: list[Dog]


class PoseInfo(BaseModel):
    model: str
    detector: str
    keypoints: list[str]
    keypoint_threshold: float
    device: str
    runtime: str = Field(..., description="what runs the pose network: 'torch' or 'onnxruntime'")
