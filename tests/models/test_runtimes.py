"""The embedding network's runtimes (dogsearch.inference.runtimes): onnxruntime and openvino give torch's vectors in
fp32 (same model id), onnxruntime close ones in int8 (another id), openvino in bf16 (the same id, as torch's bf16);
the export is cached by checksum; bad settings fail at start."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from torch import nn

from dogsearch.inference import runtimes as RT
from dogsearch.models.registry import DEFAULT_MODEL, Backbone, create_model
from dogsearch.services.embedder.settings import EmbedderSettings

TINY = "tiny-runtime-test"
SIZE = (3, 32, 32)
CONFIG = {"input_size": SIZE, "interpolation": "bilinear", "crop_pct": 1.0, "crop_mode": "center",
          "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}


class Tiny(nn.Module):
    """Conv, GELU, LayerNorm, attention-free MLP: the op kinds of a ViT block, small enough to export in a blink."""

    num_features = 24

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.BatchNorm2d(16))  # a 0-d buffer, as CNNs have
        self.norm = nn.LayerNorm(16)
        self.fc1, self.fc2 = nn.Linear(16, 48), nn.Linear(48, self.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.norm(self.stem(x).flatten(2).transpose(1, 2))
        return self.fc2(nn.functional.gelu(self.fc1(tokens))).mean(1)


@pytest.fixture
def tiny(register_model):
    seeds = {"seed": 0}

    @register_model(TINY)
    def build(args):
        return Backbone(Tiny(seeds["seed"]), TINY, dict(CONFIG))

    return seeds


@pytest.fixture
def pixels() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, *SIZE), dtype=np.uint8))


def test_onnxruntime_fp32_gives_torchs_vectors_under_the_same_model_id(tiny, pixels, tmp_path):
    ref = create_model(TINY, cache_dir=str(tmp_path))
    ort = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime", threads=1)
    assert (ref.runtime, ort.runtime) == ("torch", "onnxruntime")
    assert ort.model_id == ref.model_id == TINY and ort.dim == ref.dim == Tiny.num_features
    np.testing.assert_allclose(ort.embed(pixels), ref.embed(pixels), atol=1e-5)
    assert ort.embed(pixels[:1]).shape == (1, Tiny.num_features)  # any batch size: the batch axis is dynamic
    assert ort.module is None  # the weights live in the session, not twice


def test_openvino_fp32_gives_torchs_vectors_under_the_same_model_id(tiny, pixels, tmp_path):
    ref = create_model(TINY, cache_dir=str(tmp_path))
    ov = create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", threads=1)
    assert ov.runtime == "openvino" and ov.model_id == TINY and ov.dim == Tiny.num_features
    np.testing.assert_allclose(ov.embed(pixels), ref.embed(pixels), atol=1e-5)
    assert ov.embed(pixels[:1]).shape == (1, Tiny.num_features)
    assert ov.module is None
    [path] = tmp_path.glob("*.onnx")  # the export onnxruntime runs: one file, one cache
    assert ov.forward.path == path
    assert create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime").forward.path == path
    assert ov.forward.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"  # not the CPU's bf16


def test_openvino_bf16_gives_close_vectors_where_the_cpu_runs_it(tiny, pixels, tmp_path):
    if not RT.openvino_bf16():  # this CPU lacks bf16: asking for it is a clear error, not a silent fp32
        with pytest.raises(ValueError, match="bf16 instructions"):
            create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", precision="bf16")
        return
    ref = create_model(TINY, cache_dir=str(tmp_path)).embed(pixels)
    half = create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", precision="bf16")
    assert half.model_id == TINY and half.precision == "bf16"
    assert half.forward.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "bf16"
    vectors = half.embed(pixels)
    assert (vectors * ref).sum(1).min() > 0.99 and not np.allclose(vectors, ref, atol=1e-6)


def test_openvino_runs_the_replicas_side_by_side_and_a_lone_run_wider(tiny, pixels, tmp_path):
    model = create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", threads=1, alone_threads=2, streams=2)
    forward = model.forward
    # a stream a replica, one thread each; a lone run: one stream of every thread
    assert (forward.compiled.get_property("NUM_STREAMS"), forward.compiled.get_property("INFERENCE_NUM_THREADS")) == (
        2, 2)
    assert forward.alone_compiled.get_property("INFERENCE_NUM_THREADS") == 2
    assert forward.alone_compiled.get_property("NUM_STREAMS") == 1
    narrow = create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", threads=1)
    assert narrow.forward.alone_compiled is None
    expected = narrow.embed(pixels)
    results: dict[int, np.ndarray] = {}

    def embed(i: int) -> None:  # replicas at once, each with its own infer request
        for _ in range(5):
            results[i] = model.embed(pixels[i:i + 1])

    threads = [threading.Thread(target=embed, args=(i,)) for i in range(len(pixels))]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    np.testing.assert_allclose(np.concatenate([results[i] for i in range(len(pixels))]), expected, atol=1e-5)


FIRST_RUNS_AT_ONCE = """
import sys, threading
import torch
from dogsearch.inference.runtimes import OpenVinoForward
forward = OpenVinoForward(sys.argv[1], threads=1, streams=8)
barrier = threading.Barrier(8)
def run():
    x = torch.rand(1, *SIZE)
    barrier.wait()
    forward(x)
threads = [threading.Thread(target=run) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
"""


def test_replicas_starting_at_once_on_openvino_do_not_deadlock(tiny, tmp_path):
    # OpenVINO's Python binding sets up its numpy bridge on first use, in a static whose initialiser waits for the
    # GIL: eight threads' first runs at once deadlocked one fresh process in five here (the embedder's hang in the
    # compose topology), so twelve fresh processes catch it nineteen times in twenty. A hung one holds the GIL, so
    # only a timeout from outside ends it.
    model = create_model(TINY, cache_dir=str(tmp_path), runtime="openvino", threads=1)
    script = FIRST_RUNS_AT_ONCE.replace("SIZE", repr(SIZE))
    for _ in range(12):
        try:
            done = subprocess.run([sys.executable, "-c", script, str(model.forward.path)], timeout=60,
                                  cwd=Path(__file__).resolve().parents[2])
        except subprocess.TimeoutExpired:
            pytest.fail("the first runs of eight threads at once hung")
        assert done.returncode == 0


def test_int8_gives_close_vectors_under_another_model_id(tiny, pixels, tmp_path):
    ref = create_model(TINY, cache_dir=str(tmp_path)).embed(pixels)
    q = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime", precision="int8")
    assert q.model_id == f"{TINY}@int8"
    vectors = q.embed(pixels)
    cosines = (vectors * ref).sum(1)
    assert cosines.min() > 0.95 and not np.allclose(vectors, ref, atol=1e-5)
    assert sorted(p.name.endswith(".int8.onnx") for p in tmp_path.glob("*.onnx")) == [False, True]
    # a photo's int8 vector is the same alone as in any batch (the activations' scales are each image's own)
    np.testing.assert_array_equal(q.embed(pixels[2:3]), vectors[2:3])
    batched = RT.OnnxForward(q.forward.path)(q.normalize(pixels))
    assert not np.allclose(batched.numpy(), q.forward(q.normalize(pixels)).numpy(), atol=1e-6)


def test_int8_mixed_leaves_a_vits_last_quarter_of_blocks_in_fp32(register_model, tmp_path):
    import onnx
    from timm.models.vision_transformer import VisionTransformer

    @register_model("tiny-vit-runtime-test")
    def build(args):
        torch.manual_seed(0)
        vit = VisionTransformer(img_size=28, patch_size=14, embed_dim=16, depth=8, num_heads=2, num_classes=0)
        return Backbone(vit.eval(), "tiny-vit-runtime-test", {**CONFIG, "input_size": (3, 28, 28)})

    pixels = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, 3, 28, 28), dtype=np.uint8))
    ref = create_model("tiny-vit-runtime-test", cache_dir=str(tmp_path)).embed(pixels)
    mixed = create_model("tiny-vit-runtime-test", cache_dir=str(tmp_path), runtime="onnxruntime",
                         precision="int8-mixed")
    assert mixed.model_id == "tiny-vit-runtime-test@int8-mixed"
    assert (mixed.embed(pixels) * ref).sum(1).min() > 0.95
    (path,) = tmp_path.glob("*.int8-mixed.onnx")
    float_blocks, int_blocks = set(), set()
    for node in onnx.load(str(path)).graph.node:
        block = RT._BLOCK.match(node.name)
        if block and node.op_type in ("MatMul", "MatMulInteger") and "/attn/MatMul" not in node.name:  # weights'
            (float_blocks if node.op_type == "MatMul" else int_blocks).add(int(block.group(1)))
    assert float_blocks == {6, 7} and int_blocks == set(range(6))  # 8 blocks: the last 2 in fp32
    assert RT._last_blocks(tmp_path / path.name.replace(".int8-mixed", "")) != []
    with pytest.raises(ValueError, match="needs runtime 'onnxruntime'"):
        create_model("tiny-vit-runtime-test", precision="int8-mixed")


def test_the_export_is_cached_and_a_tampered_one_rebuilt(tiny, pixels, tmp_path, monkeypatch):
    exports = []
    real_export = RT._export
    monkeypatch.setattr(RT, "_export", lambda *a: exports.append(1) or real_export(*a))
    first = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")
    [path] = tmp_path.glob("*.onnx")
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    assert meta["sha256"] and meta["source_sha256"] == RT.weights_fingerprint(Tiny(0))
    create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")
    assert len(exports) == 1  # the second build reuses the file

    data = bytearray(path.read_bytes())
    data[-100:] = bytes(100)  # weights zeroed: a file that still loads, with other vectors
    path.write_bytes(bytes(data))
    again = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")
    assert len(exports) == 2
    np.testing.assert_allclose(again.embed(pixels), first.embed(pixels), atol=1e-6)


def test_new_weights_are_exported_anew_and_the_old_export_deleted(tiny, pixels, tmp_path):
    old = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")
    [old_path] = tmp_path.glob("*.onnx")
    tiny["seed"] = 1  # as when a retrained delta ships under the same name
    new = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")
    [new_path] = tmp_path.glob("*.onnx")
    assert new_path != old_path and not old_path.with_name(old_path.name + ".json").exists()
    np.testing.assert_allclose(new.embed(pixels), create_model(TINY).embed(pixels), atol=1e-5)
    assert not np.allclose(new.embed(pixels), old.embed(pixels), atol=1e-3)


def at_once(*calls) -> list[str]:
    """Runs the calls on threads of their own, together; the errors they raised."""
    errors: list[str] = []

    def run(call) -> None:
        try:
            call()
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    return errors


def test_replicas_filling_one_cache_at_once_each_load_the_export(tiny, pixels, tmp_path, monkeypatch):
    # Two embedders (or the embedder and the pose service: the same detector) starting together on one cache volume
    # export one network at once. Their processes' ids in their containers are alike, so both wrote the temporary
    # file ".<export>.<pid>.tmp" and the second rename found it gone: that model failed to load, and its service
    # stayed not ready until restarted. Threads of one process share a pid as those containers do. And torch keeps
    # an export's state in globals: two exports at once in one process failed as well.
    import time

    real_export, both = RT._export, threading.Barrier(2)

    def export(*args) -> None:  # both start together; an export of the ViT takes seconds before its rename
        both.wait(10)
        real_export(*args)
        time.sleep(0.5)

    monkeypatch.setattr(RT, "_export", export)
    replicas, made = [Tiny(0), Tiny(0)], []  # one network each, built here: torch's seed is global
    errors = at_once(*[lambda net=net: made.append(RT.cached_onnx(net, TINY, SIZE, tmp_path)) for net in replicas])
    assert errors == [] and len(made) == 2
    [path] = tmp_path.glob("*.onnx")
    assert made == [path, path] and not list(tmp_path.glob(".*"))  # no temporary file left
    assert json.loads(path.with_name(path.name + ".json").read_text())["sha256"] == RT.sha256_file(path)
    monkeypatch.setattr(RT, "_export", real_export)
    served = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime")  # the cached export, checksum and all
    assert served.forward.path == path
    np.testing.assert_allclose(served.embed(pixels), create_model(TINY).embed(pixels), atol=1e-5)


def test_evaluation_embeds_as_the_service_and_training_exactly(tiny, tmp_path, monkeypatch):
    from dogsearch.eval.retrieval import load_model

    monkeypatch.setenv("DOGSEARCH_EMBEDDER_CACHE_DIR", str(tmp_path))
    served = load_model(TINY, "cpu")  # as the service on this CPU
    assert (served.runtime, served.precision) == (EmbedderSettings().runtime, EmbedderSettings().precision)
    assert served.model_id == TINY
    monkeypatch.setattr(RT, "openvino_bf16", lambda: False)  # a CPU without bf16
    served = load_model(TINY, "cpu")
    assert (served.runtime, served.precision, served.model_id) == ("onnxruntime", "fp32", TINY)
    monkeypatch.setenv("DOGSEARCH_EMBEDDER_PRECISION", "int8")
    int8 = load_model(TINY, "cpu")
    assert (int8.runtime, int8.model_id) == ("onnxruntime", f"{TINY}@int8")
    exact = load_model(TINY, "cpu", exact=True)  # a head trained on the base learns its own fp32 vectors
    assert (exact.runtime, exact.precision, exact.model_id) == ("torch", "fp32", TINY)
    monkeypatch.setenv("DOGSEARCH_EMBEDDER_PRECISION", "fp32")
    monkeypatch.setenv("DOGSEARCH_EMBEDDER_RUNTIME", "torch")
    assert load_model(TINY, "cpu").runtime == "torch"


@pytest.mark.real_model
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_the_default_vit_on_the_export_runtimes_gives_the_torch_vectors(tmp_path, runtime):
    dogs = sorted((Path(__file__).parents[1] / "fixtures" / "dogs").glob("*/*.jpg"))[:4]
    ref = create_model(DEFAULT_MODEL)
    batch = torch.stack([ref.preprocess(Image.open(p)) for p in dogs])
    exported = create_model(DEFAULT_MODEL, runtime=runtime, precision="fp32", cache_dir=str(tmp_path))
    assert exported.model_id == DEFAULT_MODEL
    np.testing.assert_allclose(exported.embed(batch), ref.embed(batch), atol=1e-5)


def test_settings_resolve_the_runtime_and_fail_fast_on_bad_ones(monkeypatch):
    monkeypatch.setattr(RT, "openvino_bf16", lambda: True)  # a CPU with AMX / AVX-512 BF16
    cpu, gpu = EmbedderSettings(), EmbedderSettings(device="cuda")
    assert (cpu.runtime, cpu.precision) == ("openvino", "bf16")  # auto: the fastest that keeps the quality
    assert EmbedderSettings(runtime="openvino").precision == "bf16"  # its auto: bf16 where the CPU runs it
    assert EmbedderSettings(precision="bf16").runtime == "openvino"
    assert (gpu.runtime, gpu.precision) == ("torch", "fp32")
    # the detector follows openvino's bf16 (its boxes keep their figures there), and only that
    assert cpu.detector_precision() == "bf16" and gpu.detector_precision() == "fp32"
    assert EmbedderSettings(precision="int8").detector_precision() == "fp32"
    assert EmbedderSettings(runtime="openvino", precision="fp32").detector_precision() == "fp32"
    assert EmbedderSettings(runtime="torch").precision == "fp32"
    assert EmbedderSettings(runtime="onnxruntime").precision == "fp32"
    assert EmbedderSettings(precision="int8").runtime == "onnxruntime"
    assert EmbedderSettings(precision="fp32").runtime == "onnxruntime"
    assert EmbedderSettings(precision="fp16").runtime == "torch"  # auto: the runtime that runs the precision
    assert EmbedderSettings(device="cuda", precision="bf16").runtime == "torch"
    for bad, reason in [({"runtime": "tensorrt"}, "runtime"),
                        ({"runtime": "torch", "precision": "int8"}, "needs runtime 'onnxruntime'"),
                        ({"runtime": "onnxruntime", "device": "cuda"}, "runs on the CPU"),
                        ({"runtime": "openvino", "device": "cuda"}, "runs on the CPU"),
                        ({"runtime": "onnxruntime", "precision": "bf16"}, "'fp32', 'int8' or 'int8-mixed'"),
                        ({"runtime": "openvino", "precision": "int8"}, "int8 needs runtime 'onnxruntime'"),
                        ({"runtime": "openvino", "precision": "int8-mixed"}, "int8-mixed needs runtime 'onnxruntime'"),
                        ({"runtime": "openvino", "precision": "fp16"}, "'fp32' or 'bf16'")]:
        with pytest.raises(ValidationError, match=reason):
            EmbedderSettings(**bad)
    monkeypatch.setattr(RT, "openvino_bf16", lambda: False)  # an older CPU: fp32, and bf16 refused by name
    assert (EmbedderSettings().runtime, EmbedderSettings().precision) == ("onnxruntime", "fp32")
    assert EmbedderSettings(precision="bf16").runtime == "torch"  # its autocast
    assert EmbedderSettings(runtime="openvino").precision == "fp32"
    with pytest.raises(ValidationError, match="bf16 instructions"):
        EmbedderSettings(runtime="openvino", precision="bf16")
    monkeypatch.setenv("DOGSEARCH_EMBEDDER_RUNTIME", "tensorrt")
    with pytest.raises(ValidationError, match="openvino"):  # the error lists what there is
        EmbedderSettings()


def test_missing_runtimes_are_a_clear_error(monkeypatch, tiny, tmp_path):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
    with pytest.raises(ValidationError, match="pip install openvino"):
        EmbedderSettings(runtime="openvino")
    with pytest.raises(ValueError, match="pip install openvino"):
        create_model(TINY, runtime="openvino", cache_dir=str(tmp_path))
    assert (EmbedderSettings().runtime, EmbedderSettings().precision) == ("onnxruntime", "fp32")  # the next fastest
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ValidationError, match="pip install onnxruntime"):
        EmbedderSettings(runtime="onnxruntime")
    with pytest.raises(ValueError, match="pip install onnxruntime"):
        create_model(TINY, runtime="onnxruntime", cache_dir=str(tmp_path))
    assert EmbedderSettings().runtime == "torch"  # auto falls back to the one that runs


class _Recording:
    """An ONNX Runtime session stand-in that records its runs and can hold one until released."""

    def __init__(self, session, name: str, calls: list, hold: threading.Event | None = None) -> None:
        self.session, self.name, self.calls, self.hold = session, name, calls, hold
        self.started = threading.Event()

    def run(self, *args):
        self.calls.append(self.name)
        self.started.set()
        if self.hold is not None:
            self.hold.wait(10)
        return self.session.run(*args)


def test_a_run_alone_gets_the_wider_session_and_the_same_vectors(tiny, pixels, tmp_path):
    narrow = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime", threads=1)
    model = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime", threads=1, alone_threads=2)
    forward = model.forward
    assert narrow.forward.alone_session is None and forward.alone_session is not None
    options = forward.alone_session.get_session_options()
    assert options.intra_op_num_threads == 2 and forward.session.get_session_options().intra_op_num_threads == 1
    # a replica's idle pool threads sleep (spinning ones took the CPU from the service's other threads); a lone
    # run's spin between its layers, which is what makes two threads faster than one there
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    narrow_options = forward.session.get_session_options()
    assert narrow_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_allclose(model.embed(pixels), narrow.embed(pixels), atol=1e-6)

    calls: list[str] = []
    release = threading.Event()
    forward.alone_session = _Recording(forward.alone_session, "alone", calls, hold=release)
    forward.session = _Recording(forward.session, "narrow", calls)
    first = threading.Thread(target=model.embed, args=(pixels[:1],))
    first.start()
    assert forward.alone_session.started.wait(10)
    model.embed(pixels[1:2])  # while the first runs: the replica's own single thread
    release.set()
    first.join(10)
    model.embed(pixels[2:3])  # alone again
    assert calls == ["alone", "narrow", "alone"]


def test_no_wider_session_where_it_would_not_be_wider(tiny, tmp_path):
    for threads, alone in [(2, 2), (2, 1), (None, 2), (1, None)]:
        model = create_model(TINY, cache_dir=str(tmp_path), runtime="onnxruntime", threads=threads,
                             alone_threads=alone)
        assert model.forward.alone_session is None


def test_export_runtimes_default_one_image_a_run_and_all_cores_alone(monkeypatch, tiny, tmp_path):
    monkeypatch.setattr("dogsearch.services.embedder.settings.usable_cores", lambda: 4)
    monkeypatch.setattr("dogsearch.core.settings.usable_cores", lambda: 4)
    ort = EmbedderSettings(runtime="onnxruntime")
    assert (ort.runtime, ort.replicas, ort.torch_threads, ort.alone_threads, ort.batch_max_size) == (
        "onnxruntime", 4, 1, 4, 1)
    ov = EmbedderSettings(runtime="openvino")
    assert (ov.runtime, ov.replicas, ov.torch_threads, ov.alone_threads, ov.batch_max_size) == (
        "openvino", 4, 1, 4, 1)
    assert ort.small_models_batching()["max_batch_size"] == 8  # the detector and the classifier run on torch
    assert ort.small_models_batching()["replicas"] == 1
    torch_cpu = EmbedderSettings(runtime="torch")
    assert (torch_cpu.batch_max_size, torch_cpu.alone_threads) == (8, 1)
    assert EmbedderSettings(device="cuda").batch_max_size == 32
    chosen = EmbedderSettings(batch_max_size=4, alone_threads=1)
    assert (chosen.batch_max_size, chosen.alone_threads) == (4, 1)
    served = EmbedderSettings(model=TINY, cache_dir=str(tmp_path), runtime="onnxruntime").build_model()
    assert served.forward.session.get_session_options().intra_op_num_threads == 1  # each replica's
    assert served.forward.alone_session.get_session_options().intra_op_num_threads == 4  # a lone run's: every core
    off = EmbedderSettings(model=TINY, cache_dir=str(tmp_path), runtime="onnxruntime", alone_threads=1).build_model()
    assert off.forward.alone_session is None
    compiled = []  # (streams, threads a stream): OpenVINO itself caps them at this machine's cores
    real_compile = RT._compile
    monkeypatch.setattr(RT, "_compile", lambda core, model, precision, streams, threads: compiled.append(
        (streams, threads)) or real_compile(core, model, precision, streams, threads))
    EmbedderSettings(model=TINY, cache_dir=str(tmp_path), runtime="openvino", precision="fp32").build_model()
    assert compiled == [(4, 1), (1, 4)]  # a one-thread stream a replica; a lone run: one stream of every core
    monkeypatch.setenv("DOGSEARCH_EMBEDDER_ALONE_THREADS", "0")
    with pytest.raises(ValidationError, match="alone_threads"):
        EmbedderSettings()


async def test_the_service_names_its_runtime(tiny, tmp_path):
    import httpx

    from dogsearch.services.embedder.app import create_app

    for runtime in ("openvino", "onnxruntime"):
        settings = EmbedderSettings(model=TINY, cache_dir=str(tmp_path), detector="none", runtime=runtime,
                                    precision="fp32")
        app = create_app(settings)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
            info = (await client.get("/v1/info")).json()
        assert (info["runtime"], info["precision"], info["model"]) == (runtime, "fp32", TINY)


def test_on_a_gpu_with_bf16_the_embedder_runs_bf16_by_default(monkeypatch):
    """torch's bf16 autocast on a GPU that has it: 3.4x fp32's images/s on an H200, with the quality and the model
    id kept (docs/embedder-eval.md, "On a GPU"); fp32 on one without bf16, and on a CPU as before."""
    import torch

    from dogsearch.services.embedder.settings import EmbedderSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert EmbedderSettings(device="cuda").precision == "bf16"
    assert EmbedderSettings(device="cuda", precision="fp32").precision == "fp32"  # what the user says stands
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert EmbedderSettings(device="cuda").precision == "fp32"
    assert EmbedderSettings(runtime="torch").precision == "fp32"  # a CPU
