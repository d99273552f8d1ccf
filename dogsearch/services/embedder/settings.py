from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from dogsearch.core.settings import InferenceSettings, checked_internal_key, internal_key_field, usable_cores
from dogsearch.inference.runtimes import EXPORT_RUNTIMES, check_runtime, default_precision, default_runtime
from dogsearch.models.detect import WHOLE_PHOTO_DOG
from dogsearch.models.registry import (
    DEFAULT_CACHE_DIR,
    DEFAULT_DETECTOR,
    DEFAULT_MODEL,
    create_detector,
    create_model,
    list_detectors,
)

if TYPE_CHECKING:
    from dogsearch.models.detect import Detector
    from dogsearch.models.dogclass import DogClassifier
    from dogsearch.models.embedding import EmbeddingModel

NO_DETECTOR = "none"


class EmbedderSettings(InferenceSettings):
    model_config = SettingsConfigDict(env_prefix="DOGSEARCH_EMBEDDER_", extra="forbid", populate_by_name=True)

    model: str = Field(DEFAULT_MODEL,
                       description="a trained model in models/ (the default: the ViT fine-tuned on dogs), "
                                   "'efficientnet_lite0' (registry weights; 3-6x faster on a CPU), "
                                   "'vit_small_dinov2', or a timm name")
    weights_path: str | None = Field(None, description="local weights file instead of the registry package / hub")
    cache_dir: str = Field(DEFAULT_CACHE_DIR, description="weights converted from registry packages (ViT)")
    precision: Literal["auto", "fp32", "fp16", "bf16", "int8", "int8-mixed"] = Field(
        "auto", description="fp16 / bf16: torch autocast (bf16 on openvino: its bf16 inference, a CPU with AMX or "
                            "AVX-512 BF16); int8: runtime onnxruntime's quantised export, other vectors "
                            "(model id '<model>@int8'; 2-3x fp32 on a CPU, a little less accurate: "
                            "docs/embedder-eval.md); int8-mixed: int8 with a ViT's last quarter of blocks in fp32 "
                            "('<model>@int8-mixed'; half int8's error, 1.2-1.65x its CPU); 'auto': fp32 (bf16 on "
                            "openvino where the CPU runs it)")
    runtime: Literal["auto", "torch", "onnxruntime", "openvino"] = Field(
        "auto", description="what runs the network: 'openvino' or 'onnxruntime' (its ONNX export, cached in "
                            "cache_dir; the CPU only; the same vectors in fp32), 'torch'; 'auto': openvino in bf16 on "
                            "a CPU with bf16 instructions (AMX, AVX-512 BF16), else onnxruntime; torch on a GPU or "
                            "for fp16 (docs/embedder-eval.md, 'OpenVINO')")
    alone_threads: int | None = Field(
        None, ge=1, le=256,
        description="runtimes onnxruntime, openvino: threads of a batch that starts while no other runs (a lone "
                    "search's image), on a second session of the model whose threads spin (its weights' memory "
                    "again, ~130 MB for the ViT); default: all the cores; torch_threads or less: off, as on a "
                    "machine shared with other work or a service busy most of the time (p95 a fifth lower under "
                    "load, a lone image a third slower: docs/operations.md)")
    preload: bool = Field(True, description="load the model at start-up rather than on the first request")
    max_batch: int = Field(64, ge=1, le=1024, description="most images one /v1/embed request may carry")
    queue_max_images: int = Field(512, ge=1, description="images waiting beyond this get 503 + Retry-After")
    detector: str = Field(DEFAULT_DETECTOR, description="the dog detector whose boxes are embedded (a name in the "
                                                        "detector registry); 'none': the whole photo is the dog")
    max_dogs: int = Field(5, ge=1, le=20, description="most dogs embedded per photo (the largest)")
    whole_photo_dog: float | None = Field(
        WHOLE_PHOTO_DOG, ge=0.0, le=1.0,
        description="a photo in which the detector boxes no dog is still one dog when the dog classifier gives the "
                    "whole photo at least this dog probability: the whole photo (or with second_look, the detector's "
                    "second look); unset: the detector alone decides")
    second_look: bool = Field(
        False, description="a dog the detector missed, where the classifier sees one in the whole photo, is the "
                           "detector's second look (its likeliest box, at a lower point, where it covers under 30 % "
                           "of the photo) rather than the whole photo: more small dogs boxed, but same-dog verdicts a "
                           "little weaker on held-out dogs (docs/detection.md, \"A second look\")")
    dog_decode_side: int = Field(
        768, ge=64, le=8192,
        description="/v1/embed/dogs decodes a photo at least this large on its shorter side (a JPEG shrinks on load "
                    "no further; a 12 MP photo: 2000x1500): a dog a third of the photo across still fills a 224 px "
                    "input")
    internal_key: SecretStr | None = internal_key_field("DOGSEARCH_EMBEDDER_")

    @field_validator("internal_key")
    @classmethod
    def _set(cls, value: SecretStr | None) -> SecretStr | None:
        return checked_internal_key(value)

    @field_validator("detector")
    @classmethod
    def _detector(cls, value: str) -> str:
        known = list_detectors()
        if value != NO_DETECTOR and value not in known:
            raise ValueError(f"unknown detector {value!r}: one of {', '.join([*known, NO_DETECTOR])}")
        return value

    @model_validator(mode="after")
    def _runtime(self) -> EmbedderSettings:
        if self.runtime == "auto":
            self.runtime = default_runtime(self.device, self.precision)
        if self.precision == "auto":
            self.precision = default_precision(self.runtime, self.device)
        check_runtime(self.runtime, self.device, self.precision)
        if self.alone_threads is None:
            self.alone_threads = usable_cores() if self.runtime in EXPORT_RUNTIMES else self.torch_threads
        return self

    @property
    def detects(self) -> bool:
        return self.detector != NO_DETECTOR

    def detector_precision(self) -> str:
        """The detector runs in bf16 where the embedding model runs OpenVINO's bf16: the merged head loses no dog
        there, held out or on all 533 labelled photos, for a third less time (docs/detection.md, "Runtimes and
        bf16"); in fp32 otherwise (int8 and fp16 are the embedding model's, not the detector's)."""
        return "bf16" if (self.runtime, self.precision) == ("openvino", "bf16") else "fp32"

    def build_detector(self, alone: bool = False) -> Detector:
        """The detector as the service runs it; ``alone``: for a blocking tool that calls ``detect`` and nothing
        else (reindex, calibration), so that with ``second_look`` it takes the look itself, as the service would."""
        # onnxruntime / openvino run the detector too where they run the embedding model: the same boxes, less CPU.
        # With whole_photo_dog the service classifies the photos the detector found no dog in and asks for the
        # detector's second look itself (dogs.py `_missed_dogs`): each photo passes the classifier once.
        look_again = self.second_look and (alone or self.whole_photo_dog is None)
        return create_detector(self.detector, threads=self.torch_threads, max_dogs=self.max_dogs,
                               runtime=self.runtime, cache_dir=self.cache_dir, precision=self.detector_precision(),
                               device=self.device, look_again=look_again)

    def build_classifier(self) -> DogClassifier:
        from dogsearch.models.dogclass import DogClassifier

        return DogClassifier(device=self.device, cache_dir=self.cache_dir, runtime=self.runtime,
                             threads=self.torch_threads)

    def build_model(self) -> EmbeddingModel:
        """The model the embedder service serves with these settings: everything that embeds for the service (the
        service itself, evaluation, benchmarks) builds it here, so they all embed alike."""
        return create_model(self.model, device=self.device, precision=self.precision,
                            weights_path=self.weights_path, cache_dir=self.cache_dir, runtime=self.runtime,
                            threads=self.torch_threads, alone_threads=self.alone_threads, streams=self.replicas)

    def default_replicas(self) -> int:
        # On a CPU one single-threaded replica per core runs the most images per second: 1.3-1.5x one team of
        # all threads on 2 cores, 1.5x on 16 (docs/operations.md). A GPU runs one forward at a time anyway.
        return usable_cores() if self.device == "cpu" else 1

    def default_batch_max_size(self) -> int:
        # Per image the fastest: onnxruntime runs the ViT and the CNN cheapest one image at a time (7-19 % more CPU an
        # image at batch 4-8: the activations fall out of the caches), torch on a CPU at 4-8; a GPU wants more.
        runtime = default_runtime(self.device, self.precision) if self.runtime == "auto" else self.runtime
        return 1 if runtime in EXPORT_RUNTIMES else self.torch_batch_max_size()

    def torch_batch_max_size(self) -> int:
        return 8 if self.device == "cpu" else 32

    def small_models_batching(self) -> dict[str, Any]:
        """The detector's and the classifier's batching: one replica each (they are small next to the embedding
        model) and torch's batch size (they run on torch whatever runs the embedding model; `batch_max_size` is the
        embedding model's)."""
        return self.batching() | {"replicas": 1, "max_batch_size": self.torch_batch_max_size()}
