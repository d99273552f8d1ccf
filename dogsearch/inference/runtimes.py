"""The runtimes an embedding network's forward pass runs on, side by side behind one contract (``Forward``: a batch of
normalised float NCHW pixels in, the (N, dim) features out), so the model around it (preprocessing, L2
normalisation) and the service's cache and batcher do not care which one runs.

* ``torch``: the network itself (any device, fp32 / fp16 / bf16 autocast).
* ``onnxruntime``: the same network exported once to ONNX (a LoRA delta is merged into the weights before: the
  export is the served network), run by ONNX Runtime on the CPU with every graph optimisation on; fp32 gives the
  torch vectors to ~1e-6, so the vectors keep their model id. ``int8``: the export quantised dynamically
  (onnxruntime.quantization: int8 weights, activations quantised per batch): other vectors, so another model id.
  ``int8-mixed``: the same with the last quarter of a ViT's blocks left in fp32, where most of int8's error
  arises (docs/embedder-eval.md, "Mixed int8 and fewer tokens"): half the error, 1.2-1.65x its CPU.
* ``openvino``: the same cached ONNX export compiled by OpenVINO for the CPU. fp32 (its f32 precision hint) gives
  the onnxruntime vectors to ~1e-5 and keeps the model id; bf16 (OpenVINO's own default on a CPU with bf16
  instructions: AMX, AVX-512 BF16) is several times faster, with vectors as close as torch's bf16 autocast (the same
  model id, as there).

Exports are cached in the model cache dir, named by the model id and a fingerprint of the weights they were made
from (a changed delta is another file), each with a sidecar recording its checksum: a cached file whose bytes do not
match is rebuilt, never run.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import re
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from dogsearch.core.paths import sha256_file, write_atomically
from dogsearch.inference.device import autocast

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["EXPORT_RUNTIMES", "INT8", "INT8_MIXED", "QUANTISED", "RUNTIMES", "Forward", "OnnxForward",
           "OpenVinoForward", "TorchForward", "cached_onnx", "check_runtime", "cuda_bf16", "default_precision",
           "default_runtime", "export_forward", "onnxruntime_missing", "openvino_bf16",
           "openvino_missing", "runtime_model_id", "weights_fingerprint"]

RUNTIMES = ("torch", "onnxruntime", "openvino")
EXPORT_RUNTIMES = ("onnxruntime", "openvino")  # the runtimes that run the cached ONNX export
INT8 = "int8"  # the precisions only onnxruntime runs: quantised exports
INT8_MIXED = "int8-mixed"
QUANTISED = (INT8, INT8_MIXED)
_BLOCK = re.compile(r"/blocks/blocks\.(\d+)/")  # a timm ViT's block in its export's node names
_EXPORTER_VERSION = 1  # bump when the export or the quantisation changes: cached files are then rebuilt
_OPSET = 17
_INPUT, _OUTPUT = "pixels", "features"
log = logging.getLogger("dogsearch.models")


class Forward(Protocol):
    """A network's forward pass on one runtime: normalised float NCHW pixels -> (N, dim) float32 features.
    Thread-safe: the service's replicas call it at once, each from its own thread."""

    runtime: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class TorchForward:
    runtime = "torch"

    def __init__(self, module: torch.nn.Module, device: torch.device, precision: str) -> None:
        self.module, self.device, self.precision = module.eval(), device, precision

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device, self.precision):
            return self.module(x).float()


class _AloneOrShared:
    """Picks a runner for each run: the wider one (``alone``, all the cores) for a run that starts while no other
    runs, else the ``shared`` one, which each replica runs on its own thread(s)."""

    def __init__(self) -> None:
        self._running = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def pick(self, shared, alone):
        with self._lock:
            runner = alone if self._running == 0 and alone is not None else shared
            self._running += 1
        try:
            yield runner
        finally:
            with self._lock:
                self._running -= 1


class OnnxForward:
    """An ONNX file run by ONNX Runtime on the CPU. ``threads``: the intra-op threads of each run (the embedder's
    ``torch_threads``; with one, a run stays on its caller's thread, so replicas run side by side).
    ``alone_threads``: more of them for a run that starts while no other runs, on a second session of the same file
    (its weights in memory twice: ~130 MB for the ViT): a lone search's image gets all the cores, while under load
    each replica keeps its one thread (one session of two threads shared by two replicas cost 15 % more CPU an
    image). Its idle threads spin between the run's layers: asleep, each layer waited for them to wake, and two
    threads ran a lone ViT image hardly faster than one (docs/operations.md).

    ``per_image``: run a batch one image at a time. A dynamically quantised export scales each run's activations by
    the whole run's range, so an image's int8 vector would depend on the images batched with it, and so would the
    quality (Oxford's R@1 0.938 at 32 a run, 0.940 alone: docs/embedder-eval.md); alone, a photo has one vector
    wherever it is embedded, at no cost on a CPU, where one image a run is the cheapest anyway."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, threads: int | None = None, alone_threads: int | None = None, *,
                 per_image: bool = False) -> None:
        self.path = Path(path)
        self.per_image = per_image
        self.session = _session(self.path, threads)
        wider = threads is not None and alone_threads is not None and alone_threads > threads
        self.alone_session = _session(self.path, alone_threads, spin=True) if wider else None
        self._runs = _AloneOrShared()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.detach().to("cpu", torch.float32).contiguous().numpy()
        with self._runs.pick(self.session, self.alone_session) as session:
            if self.per_image:
                return torch.from_numpy(np.concatenate([session.run([_OUTPUT], {_INPUT: pixels[i:i + 1]})[0]
                                                        for i in range(len(pixels))]))
            return torch.from_numpy(session.run([_OUTPUT], {_INPUT: pixels})[0])


_OPENVINO_FIRST_RUNS = threading.Lock()  # OpenVinoForward.__call__


class OpenVinoForward:
    """An ONNX file compiled by OpenVINO for the CPU, once (the caller holds the model's lock). OpenVINO runs a
    request on its own threads, in streams: ``streams`` (the service's replicas, each calling from its own thread)
    streams of ``threads`` threads each, so that the replicas' runs go side by side as on onnxruntime (one stream
    would queue them); ``alone_threads``: a second compilation (LATENCY hint, one stream of that many threads) for a
    run that starts while no other runs. ``precision``: 'fp32' (the f32 hint: onnxruntime's vectors) or 'bf16'."""

    runtime = "openvino"

    def __init__(self, path: str | Path, threads: int | None = None, alone_threads: int | None = None,
                 streams: int = 1, precision: str = "fp32") -> None:
        missing = openvino_missing()
        if missing:
            raise RuntimeError(missing)
        import openvino as ov

        self.path, self.precision = Path(path), precision
        core = ov.Core()
        model = core.read_model(str(self.path))
        self.compiled = _compile(core, model, precision, streams, threads)
        wider = threads is not None and alone_threads is not None and alone_threads > threads
        self.alone_compiled = _compile(core, model, precision, 1, alone_threads) if wider else None
        self._runs = _AloneOrShared()
        self._requests = threading.local()  # an infer request serves one run at a time: one per calling thread
        self._ran = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._ran:
            return self._run(x)
        # OpenVINO's Python binding sets up its numpy bridge on first use, in a static whose initialiser waits for
        # the GIL: two threads' first runs at once deadlock (one holds the GIL waiting on the static, the other the
        # static waiting on the GIL: the embedder's hang in the compose topology). So a model's first run runs alone.
        with _OPENVINO_FIRST_RUNS:
            out = self._run(x)
            self._ran = True
        return out

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        pixels = x.detach().to("cpu", torch.float32).contiguous().numpy()
        with self._runs.pick(self.compiled, self.alone_compiled) as compiled:
            requests = self._requests.__dict__.setdefault("by_model", {})
            request = requests.get(id(compiled))
            if request is None:
                request = requests[id(compiled)] = compiled.create_infer_request()
            out = request.infer({0: pixels})[0]
            return torch.from_numpy(out.copy())  # the request's buffer is overwritten by its next run


def _compile(core, model, precision: str, streams: int, threads: int | None):
    config: dict = {"PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY", "NUM_STREAMS": streams,
                    "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"}
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = streams * threads
    return core.compile_model(model, "CPU", config)


def export_forward(path: str | Path, runtime: str, threads: int | None = None, alone_threads: int | None = None,
                   streams: int = 1, precision: str = "fp32") -> Forward:
    """The Forward of an ONNX export on ``runtime`` (one of EXPORT_RUNTIMES)."""
    if runtime == "openvino":
        return OpenVinoForward(path, threads, alone_threads, streams, precision)
    return OnnxForward(path, threads, alone_threads, per_image=precision in QUANTISED)


def onnxruntime_missing() -> str | None:
    """Why the onnxruntime runtime cannot run here, or None when it can."""
    if importlib.util.find_spec("onnxruntime") is None:
        return ("runtime 'onnxruntime' needs the onnxruntime package, which is not installed: "
                "`pip install onnxruntime`, or use runtime 'torch'")
    return None


def openvino_missing() -> str | None:
    """Why the openvino runtime cannot run here, or None when it can."""
    if importlib.util.find_spec("openvino") is None:
        return ("runtime 'openvino' needs the openvino package, which is not installed: "
                "`pip install openvino`, or use runtime 'onnxruntime' or 'torch'")
    return None


@functools.cache
def openvino_bf16() -> bool:
    """Whether OpenVINO runs bf16 on this CPU (AMX or AVX-512 BF16), where it is its default precision. On Linux
    read from the CPU's flags: asking OpenVINO starts its thread pool, and the settings ask this before the
    service tunes malloc (core/memory.py), whose one arena must come before any thread allocates. With more
    arenas each bomb-sized decode landed in another one, and sequential 190 MB decodes grew the RSS by 190 MB
    each instead of reusing the memory."""
    if sys.platform.startswith("linux"):
        try:
            with open("/proc/cpuinfo") as info:
                flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
            return "amx_bf16" in flags or "avx512_bf16" in flags
        except OSError:
            pass
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def default_runtime(device: str, precision: str = "fp32", among: tuple[str, ...] = RUNTIMES) -> str:
    """The fastest runtime of ``among`` that keeps the quality (docs/embedder-eval.md): on a CPU with bf16
    instructions OpenVINO in bf16 (1.8x onnxruntime fp32 on AVX-512 BF16, 3.2x on AMX), else ONNX Runtime (when
    installed and the precision is one it runs); torch on a GPU and for fp16."""
    if device != "cpu":
        return "torch"
    if "openvino" in among and precision in ("auto", "bf16") and openvino_missing() is None and openvino_bf16():
        return "openvino"
    runs = precision in ("auto", "fp32", *QUANTISED) and onnxruntime_missing() is None
    return "onnxruntime" if runs else "torch"


def default_precision(runtime: str, device: str = "cpu") -> str:
    """fp32, but bf16 on openvino where the CPU runs it (OpenVINO's own default there) and torch's bf16 autocast on a
    GPU that has bf16 (3.4x fp32's images/s on an H200), both of which keep the quality and the model id
    (docs/embedder-eval.md, "OpenVINO", "On a GPU"). int8 is 2-3x faster than fp32 and, one image a run, within
    0.005 of its R@1 on every held-out set, with 2 photos of 520 to spare on unseen breeds, and its vectors need every
    gallery reindexed ("Mixed int8 and fewer tokens"); it is there to choose, as is int8-mixed."""
    if runtime == "openvino" and openvino_missing() is None and openvino_bf16():
        return "bf16"
    if runtime == "torch" and str(device).startswith("cuda") and cuda_bf16():
        return "bf16"
    return "fp32"


def cuda_bf16() -> bool:
    """Whether torch sees a CUDA GPU that computes in bf16 (Ampere and later)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def check_runtime(runtime: str, device: str, precision: str) -> None:
    """ValueError naming what to change when ``runtime`` cannot run ``precision`` on ``device`` (or is unknown or
    not installed)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use {' or '.join(map(repr, RUNTIMES))}")
    if runtime == "torch":
        if precision in QUANTISED:
            raise ValueError(f"precision {precision!r} is a quantised ONNX export: it needs runtime 'onnxruntime'")
        return
    if not str(device).startswith("cpu"):
        raise ValueError(f"runtime {runtime!r} runs on the CPU here, not {device!r}: use runtime 'torch' there")
    if runtime == "openvino":
        if precision not in ("fp32", "bf16"):
            hint = f": {precision} needs runtime 'onnxruntime'" if precision in QUANTISED else ""
            raise ValueError(f"runtime 'openvino' runs precision 'fp32' or 'bf16', not {precision!r}{hint}")
        missing = openvino_missing()
        if missing:
            raise ValueError(missing)
        if precision == "bf16" and not openvino_bf16():
            raise ValueError("precision 'bf16' on runtime 'openvino' needs a CPU with bf16 instructions (AMX or "
                             "AVX-512 BF16), which this one lacks: use precision 'fp32'")
        return
    if precision not in ("fp32", *QUANTISED):
        raise ValueError(f"runtime 'onnxruntime' runs precision 'fp32', 'int8' or 'int8-mixed', not {precision!r}")
    missing = onnxruntime_missing()
    if missing:
        raise ValueError(missing)


def runtime_model_id(model_id: str, precision: str) -> str:
    """The id of the vectors a runtime gives: int8 changes them (a gallery must be reindexed); fp32 does not."""
    return f"{model_id}@{precision}" if precision in QUANTISED else model_id


def weights_fingerprint(module: torch.nn.Module) -> str:
    """sha256 of a network's weights (names, shapes, dtypes, bytes): what an export was made from."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too (BatchNorm's counter)
    return digest.hexdigest()


def cached_onnx(module: torch.nn.Module, model_id: str, input_size: tuple[int, int, int], cache_dir: str | Path, *,
                quantize: str | None = None) -> Path:
    """The ONNX export of ``module`` (and with ``quantize``, one of ``QUANTISED``, its int8 quantisation), made once
    and cached in ``cache_dir``; a cached file whose checksum does not match its sidecar is rebuilt. Exports of the
    same model made from other weights are deleted (the cache holds one per model id and precision)."""
    fingerprint = weights_fingerprint(module)
    cache = Path(cache_dir).expanduser()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
    suffix = f".{quantize}.onnx" if quantize else ".onnx"
    target = cache / f"{stem}.{fingerprint[:16]}{suffix}"
    meta_path = target.with_name(target.name + ".json")
    wanted = {"source_sha256": fingerprint, "exporter": _EXPORTER_VERSION, "quantization": quantize}
    if target.is_file() and meta_path.is_file():
        with contextlib.suppress(ValueError, OSError):
            meta = json.loads(meta_path.read_text())
            if all(meta.get(k) == v for k, v in wanted.items()):
                if sha256_file(target) == meta.get("sha256"):
                    return target
                log.warning("cached ONNX export does not match its checksum: rebuilding it",
                            extra={"path": str(target)})
    cache.mkdir(parents=True, exist_ok=True)
    if quantize:
        fp32 = cached_onnx(module, model_id, input_size, cache_dir)
        write_atomically(target, lambda tmp: _quantize(fp32, tmp, mixed=quantize == INT8_MIXED))
    else:
        write_atomically(target, lambda tmp: _export(module, input_size, tmp))
    # the checksum of the file there now (another replica's if it replaced ours since: its sidecar follows)
    digest = sha256_file(target)
    write_atomically(meta_path, lambda tmp: tmp.write_text(json.dumps({**wanted, "sha256": digest})))
    stale = re.compile(re.escape(stem) + r"\.[0-9a-f]{16}" + re.escape(suffix) + r"(\.json)?")
    for old in cache.iterdir():
        if stale.fullmatch(old.name) and old not in (target, meta_path):
            old.unlink(missing_ok=True)
    return target


# torch.onnx.export keeps its state in module globals, so two exports at once in one process fail ("GLOBALS.
# in_onnx_export must be True"). All in one process, the embedding model's export at start-up and the pose model's,
# built by a first request, can meet; a model that fails to preload leaves its service not ready until restarted.
_EXPORTING = threading.Lock()


def _export(module: torch.nn.Module, input_size: tuple[int, int, int], path: Path) -> None:
    example = torch.zeros(1, *input_size)
    with _EXPORTING, torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes: fixed at 224 px
        torch.onnx.export(module.float().eval().cpu(), example, str(path), input_names=[_INPUT],
                          output_names=[_OUTPUT], dynamic_axes={_INPUT: {0: "batch"}, _OUTPUT: {0: "batch"}},
                          opset_version=_OPSET, dynamo=False)


def _quantize(source: Path, path: Path, mixed: bool = False) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().disabled, was = True, logging.getLogger().disabled  # its "run pre-processing" warning
    try:
        quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=_last_blocks(source) if mixed else None)
    finally:
        logging.getLogger().disabled = was


def _last_blocks(path: Path) -> list[str]:
    """The nodes of the last quarter of a ViT's blocks (none in a network without blocks: all of it is quantised)."""
    import onnx

    nodes = [(int(m.group(1)), n.name) for n in onnx.load(str(path)).graph.node if (m := _BLOCK.match(n.name))]
    depth = 1 + max((b for b, _ in nodes), default=-1)
    return [name for b, name in nodes if b >= depth - depth // 4]


def _session(path: Path, threads: int | None, spin: bool = False) -> onnxruntime.InferenceSession:
    missing = onnxruntime_missing()
    if missing:
        raise RuntimeError(missing)
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    # Idle pool threads sleep rather than spin unless asked: spinning took 1.4-2.1x the CPU an image from the
    # service's other threads (decoding, HTTP) and from the other replica (docs/operations.md, "ONNX Runtime's
    # threads and batches").
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
