"""Where and in which precision a model runs: device names checked, precisions checked, and the autocast context
every model's forward pass runs in (embedding models and pose models alike)."""
from __future__ import annotations

import contextlib

import torch

__all__ = ["PRECISIONS", "autocast", "resolve_device", "validate_precision"]

PRECISIONS = ("fp32", "fp16", "bf16")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def validate_precision(precision: str, device: torch.device | None = None) -> str:
    """``precision`` when it is one of PRECISIONS (and, given a resolved ``device``, one that device runs)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if device is None:
        return precision
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            "precision 'fp16' needs a CUDA device (CPU kernels for fp16 convolutions are slow "
            "or missing); on CPU use precision 'bf16' or 'fp32'"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported on {device}; use 'fp16' or 'fp32'")
    return precision


def resolve_device(device: str | torch.device) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' -> torch.device, checking that it exists."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid device {device!r}: use 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ValueError(f"unsupported device {device!r}: use 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} was requested but CUDA is not available "
            "(torch.cuda.is_available() is False: no GPU visible, no driver, or a CPU-only "
            "torch build); use device='cpu'"
        )
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    count = torch.cuda.device_count()
    if index >= count:
        raise RuntimeError(f"device {device!r} does not exist: {count} CUDA device(s) visible")
    return torch.device("cuda", index)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: torch.autocast to fp16 or bf16, nothing for fp32."""
    dtype = _AUTOCAST_DTYPES.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
