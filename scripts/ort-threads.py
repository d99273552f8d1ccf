"""ONNX Runtime's layouts for the embedder's network, bare (docs/operations.md, "ONNX Runtime's threads and
batches"): CPU ms and wall ms an image at batch 1, 4 and 8 on one intra-op thread, on two with idle threads spinning
(ONNX Runtime's default) and sleeping (the service's), then two replicas side by side on two single-threaded sessions
against two replicas sharing one two-thread session. Rounds take turns (A B C, A B C, ...); CPU is the whole
process's, the median round; wall the best round. The model, runtime's precision: the embedder's settings
(DOGSEARCH_EMBEDDER_MODEL, _PRECISION). Prints JSON.

    python scripts/ort-threads.py [--rounds 3] [--images 8]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dogsearch.bench.common import cpu_seconds, sample_photos  # noqa: E402
from dogsearch.core.memory import tune_malloc  # noqa: E402
from dogsearch.services.embedder.settings import EmbedderSettings  # noqa: E402


def session(path: Path, threads: int, spin: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=8, help="images a round (per case)")
    args = parser.parse_args()
    tune_malloc()
    torch.set_num_threads(1)
    settings = EmbedderSettings(runtime="onnxruntime")
    model = settings.build_model()
    path = model.forward.path
    tensors = [model.preprocess(Image.open(p).convert("RGB")) for p in sample_photos()]
    x = model.normalize(torch.stack([tensors[i % len(tensors)] for i in range(8)])).numpy()
    sessions = {"1 thread": session(path, 1, False), "2 threads spinning": session(path, 2, True),
                "2 threads sleeping": session(path, 2, False)}
    pool = ThreadPoolExecutor(2)

    def alone(s, bs):
        for _ in range(0, args.images, bs):
            s.run(None, {"pixels": x[:bs]})

    def side_by_side(s, bs):
        list(pool.map(lambda _: s.run(None, {"pixels": x[:bs]}), range(0, args.images, bs)))

    cases = {f"{name}, batch {bs}": (alone, s, bs) for name, s in sessions.items() for bs in (1, 4, 8)}
    cases["2 replicas x 1-thread session, batch 1"] = (side_by_side, sessions["1 thread"], 1)
    cases["2 replicas sharing a 2-thread session, batch 1"] = (side_by_side, sessions["2 threads sleeping"], 1)
    for fn, s, bs in cases.values():  # warm-up: each shape once
        fn(s, bs)
    cpu: dict[str, list[float]] = {c: [] for c in cases}
    wall: dict[str, list[float]] = {c: [] for c in cases}
    for _ in range(args.rounds):
        for case, (fn, s, bs) in cases.items():
            c, w = cpu_seconds(), time.perf_counter()
            fn(s, bs)
            cpu[case].append(1000 * (cpu_seconds() - c) / args.images)
            wall[case].append(1000 * (time.perf_counter() - w) / args.images)
    out = {"model": model.model_id, "images": args.images, "rounds": args.rounds}
    for case in cases:
        out[case] = {"cpu_ms_per_image": round(sorted(cpu[case])[len(cpu[case]) // 2], 1),
                     "wall_ms_per_image": round(min(wall[case]), 1)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
