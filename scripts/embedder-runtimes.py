"""The embedder's runtimes side by side (docs/embedder-eval.md, "Runtimes"): the bare forward of each runtime and
precision on one thread, measured in rounds that take turns (A B C, A B C, ...) so that a machine shared with other
jobs slows them alike. Reports each one's CPU milliseconds per image (the process's CPU time, which the other jobs
disturb least: OpenVINO may run a request on threads of its own, so not the calling thread's), its wall milliseconds
(best round) and its cosine to the first variant's vectors on the sample photos; with ``--alone-threads N``, a lone
image's wall milliseconds on N threads (the service's lone run: onnxruntime's and openvino's second session), the
median and the best of the rounds. Prints JSON.

    python scripts/embedder-runtimes.py [--model M] [--rounds 5] [--images 16] [--alone-threads 2]

A variant is "RUNTIME PRECISION", or "RUNTIME PRECISION MODEL" for another model than --model (a smaller input's:
"onnxruntime int8 vit_small_dinov2-lora-dogs-v1-196px"); the photos are each model's own preprocessing of them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dogsearch.bench.common import sample_photos  # noqa: E402
from dogsearch.core.memory import tune_malloc  # noqa: E402
from dogsearch.models.registry import DEFAULT_MODEL, create_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=16, help="images a round (per batch size)")
    parser.add_argument("--variants", default="torch fp32,onnxruntime fp32,onnxruntime int8,openvino fp32,"
                                               "openvino bf16")
    parser.add_argument("--alone-threads", type=int, default=0, help="also a lone image's latency on N threads")
    args = parser.parse_args()
    tune_malloc()  # as the services do
    torch.set_num_threads(1)
    models = {name: build(args, name, threads=1) for name in args.variants.split(",")}
    photos = [Image.open(p).convert("RGB") for p in sample_photos()]
    batches = {name: torch.stack([model.preprocess(photos[i % len(photos)]) for i in range(args.images)])
               for name, model in models.items()}
    first = next(iter(models))
    ref = models[first].embed(batches[first])
    out: dict = {"model": args.model, "images": args.images, "rounds": args.rounds}
    cpu: dict = {(n, bs): [] for n in models for bs in (1, 8)}
    wall: dict = {(n, bs): [] for n in models for bs in (1, 8)}
    for name, model in models.items():  # warm-up
        model.embed(batches[name][:8])
    for _ in range(args.rounds):
        for bs in (1, 8):
            for name, model in models.items():
                c, w = time.process_time(), time.perf_counter()
                for i in range(0, args.images, bs):
                    model.embed(batches[name][i:i + bs])
                cpu[name, bs].append(1000 * (time.process_time() - c) / args.images)
                wall[name, bs].append(1000 * (time.perf_counter() - w) / args.images)
    base = "torch fp32" if "torch fp32" in models else next(iter(models))
    for name, model in models.items():
        vectors = model.embed(batches[name])  # cosine to the first's (at another size: not close; another model: none)
        cosine = round(float((vectors * ref).sum(1).min()), 5) if vectors.shape == ref.shape else None
        out[name] = {
            "model_id": model.model_id,
            **{f"cpu_ms_per_image_batch{bs}": round(sorted(cpu[name, bs])[len(cpu[name, bs]) // 2], 1)
               for bs in (1, 8)},
            **{f"wall_ms_per_image_batch{bs}": round(min(wall[name, bs]), 1) for bs in (1, 8)},
            **{f"speedup_cpu_batch{bs}": round(sorted(cpu[base, bs])[len(cpu[base, bs]) // 2]
                                               / sorted(cpu[name, bs])[len(cpu[name, bs]) // 2], 2)
               for bs in (1, 8)},
            "min_cosine_to_first": cosine,
        }
    if args.alone_threads:
        for name, ms in lone_latency(args, batches).items():
            out[name].update(ms)
    print(json.dumps(out, indent=2))


def build(args: argparse.Namespace, variant: str, **options):
    runtime, precision, *other = variant.split()
    return create_model(other[0] if other else args.model, runtime=runtime, precision=precision, **options)


def lone_latency(args: argparse.Namespace, batches: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Each variant's wall ms for one image on ``alone_threads`` threads, in rounds that take turns."""
    lone = {name: build(args, name, threads=1, alone_threads=args.alone_threads) for name in args.variants.split(",")}
    times: dict[str, list[float]] = {name: [] for name in lone}
    for _ in range(args.rounds + 1):  # the first round warms up
        for name, model in lone.items():
            torch.set_num_threads(args.alone_threads if model.runtime == "torch" else 1)
            w = time.perf_counter()
            model.embed(batches[name][:1])
            times[name].append(1000 * (time.perf_counter() - w))
    torch.set_num_threads(1)
    key = f"lone_image_ms_{args.alone_threads}_threads"
    return {name: {f"{key}_median": round(sorted(t[1:])[len(t[1:]) // 2], 1), f"{key}_best": round(min(t[1:]), 1)}
            for name, t in times.items()}


if __name__ == "__main__":
    main()
