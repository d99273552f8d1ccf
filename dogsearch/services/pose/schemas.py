"""The pose API's JSON (the contract the web UI is built against), and its `box` form field."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from dogsearch.core.boxes import BadBox, Box, box_text, parse_box


def box_field(box: Box, score: float | None = None) -> str:
    """A dog's `box` field: "x0,y0,x1,y1", then its detector's score where one judged it."""
    return box_text(box) if score is None else f"{box_text(box)},{score:g}"


def parse_box_field(text: str) -> tuple[Box, float | None]:
    """A `box` field's box and score (None: none came, as from a client that marks boxes); BadBox when the box is
    bad or the score not a number from 0 to 1."""
    head, _, score = text.rpartition(",")
    if head.count(",") != 3:  # four numbers: no score
        return parse_box(text), None
    try:
        value = float(score)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise BadBox(f"box {text[:64]!r}: its fifth number, the detector's score, is from 0 to 1")
    return parse_box(head), value


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
    given: bool = Field(False, description="the box came with the request without a score (score 1): no detector "
                                           "judged it")
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
