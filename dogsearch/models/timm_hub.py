"""Any other name: a timm model name (``"resnet50"``, ``"resnet50.a1_in1k"``, ``"timm/resnet50.a1_in1k"``,
``"hf-hub:org/repo"``) built with ``pretrained=True`` (needs the Hugging Face Hub), or with weights from
``weights_path`` (a timm registry architecture then, built offline). The registry's last resort: it takes every
name no family registered and no trained model has, and says so helpfully when timm does not know it either.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable

import timm

from dogsearch.models import weights as W
from dogsearch.models.embedding import timm_data_config
from dogsearch.models.registry import DEFAULT_MODEL, MODELS, Backbone, BuildArgs, list_models
from dogsearch.models.weights import WeightsError

_HUB_PREFIXES = ("hf-hub:", "hf_hub:")


@MODELS.register_fallback(100)
def find_timm(name: str) -> Callable[[BuildArgs], Backbone]:
    return build_timm


def build_timm(args: BuildArgs) -> Backbone:
    name, weights_path, num_classes = args.name, args.weights_path, args.num_classes
    hub_id = None
    if name.startswith(_HUB_PREFIXES):
        hub_id = name.split(":", 1)[1]
    elif name.startswith("timm/"):
        hub_id = name
    if hub_id is not None and not hub_id:
        raise ValueError(f"model name {name!r} has no repository after the prefix")

    if weights_path is None:
        if hub_id is None:
            _check_timm_name(name, need_pretrained=True)
        create_name = f"hf-hub:{hub_id}" if hub_id else name
        try:
            module = timm.create_model(create_name, pretrained=True, num_classes=num_classes)
        except Exception as exc:  # network / hub / cache errors come in many types
            raise WeightsError(
                f"could not fetch pretrained weights for model {name!r} "
                f"({type(exc).__name__}: {exc}). Downloading needs the Hugging Face Hub; "
                "offline, set weights_path to a local .pth/.safetensors file for this "
                f"architecture, or use one of ours: {_ours()} (the default is {DEFAULT_MODEL!r})."
            ) from exc
        cfg = getattr(module, "pretrained_cfg", {}) or {}
        if hub_id:
            model_id = f"hf-hub:{hub_id}"
        else:
            arch = cfg.get("architecture") or name.split(".", 1)[0]
            tag = cfg.get("tag")
            model_id = f"{arch}.{tag}" if tag else arch
        return Backbone(module.eval(), model_id, timm_data_config(module))

    # local weights: the architecture must come from the timm registry
    registry_name = name
    if hub_id is not None:
        if not hub_id.startswith("timm/"):
            raise ValueError(
                f"cannot build {name!r} offline from weights_path: only timm registry names "
                "(e.g. 'resnet50' or 'timm/resnet50.a1_in1k') can be built without the Hub"
            )
        registry_name = hub_id[len("timm/") :]
    _check_timm_name(registry_name, need_pretrained=False)
    module = timm.create_model(registry_name, pretrained=False, num_classes=num_classes)
    path, digest, source = W.local_weights(weights_path, args.weights_sha256)
    target = module.state_dict()
    if num_classes == 0:
        # drop the checkpoint's classifier: the feature model has none
        full_keys = set(timm.create_model(registry_name, pretrained=False).state_dict())
        extra = full_keys - set(target)
        source = {k: v for k, v in source.items() if k not in extra}
    W.load_strict(module, source, str(path))
    arch = registry_name.split(".", 1)[0]
    return Backbone(module.eval(), W.local_model_id(arch, digest), timm_data_config(module))


def _ours() -> str:
    return ", ".join(repr(n) for n in list_models())


def _check_timm_name(name: str, *, need_pretrained: bool) -> None:
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = difflib.get_close_matches(name, list_models(), n=3)
        close += [n for n in difflib.get_close_matches(arch, timm.list_models(), n=5) if n not in close]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        raise ValueError(
            f"unknown model name {name!r}: neither one of ours ({_ours()}, or a folder in models/) "
            f"nor a timm model.{hint} "
            "List timm names with `python -c \"import timm; print(timm.list_models('*resnet*', "
            "pretrained=True))\"`, or see https://huggingface.co/timm."
        )
    if need_pretrained:
        if not timm.list_pretrained(name if tag else f"{arch}.*"):
            raise ValueError(
                f"timm has no pretrained weights named {name!r}; pick one of "
                f"timm.list_pretrained('{arch}*') or pass weights_path"
            )
