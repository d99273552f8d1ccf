"""OpenVINO's own int8 for the embedder (docs/embedder-eval.md, "OpenVINO"): NNCF post-training quantisation of the
cached ONNX export with a calibration set of training photos only (Imagewoof train and DogFaceNet's train dogs,
never val, dev or held-out), then its bare forward against OpenVINO bf16 (the process's CPU ms an image on one
thread, rounds taking turns) and its quality with the evaluation's own code on the held-out sets. An experiment:
the int8 model is not a precision the service runs. Needs `pip install nncf`. Prints JSON.

    python scripts/openvino-int8.py --data ../shared/data [--calibration 300] [--rounds 5] [--out /tmp/ov-int8]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dogsearch.core.memory import tune_malloc  # noqa: E402
from dogsearch.eval.retrieval import evaluate_dir  # noqa: E402
from dogsearch.eval.splits import labelled_images, select  # noqa: E402
from dogsearch.inference.runtimes import OpenVinoForward  # noqa: E402
from dogsearch.models.registry import DEFAULT_MODEL, create_model  # noqa: E402


def calibration_photos(data: Path, n: int) -> list[Path]:
    """n training photos, half breeds and half individual dogs, spread evenly over the sorted lists."""
    breeds = [p for p, _ in select(labelled_images(data / "imagewoof" / "train"), "breed", "train")]
    dogs = [p for p, _ in select(labelled_images(data / "dogfacenet"), "identity", "train")]
    picked = []
    for photos, k in ((sorted(breeds), n // 2), (sorted(dogs), n - n // 2)):
        picked += [photos[i * len(photos) // k] for i in range(k)]
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--calibration", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ov-int8"))
    parser.add_argument("--skip-eval", action="store_true")
    parser.add_argument("--no-smooth-quant", action="store_true", help="leave NNCF's SmoothQuant out")
    args = parser.parse_args()
    import nncf
    import openvino as ov

    tune_malloc()
    torch.set_num_threads(1)
    bf16 = create_model(args.model, runtime="openvino", precision="bf16", threads=1)
    out: dict = {"model": args.model, "calibration": args.calibration}
    xml = args.out / "int8.xml"
    if not xml.is_file():
        photos = calibration_photos(args.data, args.calibration)
        pixels = [bf16.preprocess(Image.open(p).convert("RGB"))[None].numpy() for p in photos]
        start = time.perf_counter()
        advanced = nncf.AdvancedQuantizationParameters(smooth_quant_alpha=-1) if args.no_smooth_quant else None
        quantized = nncf.quantize(ov.Core().read_model(str(bf16.forward.path)), nncf.Dataset(pixels),
                                  model_type=nncf.ModelType.TRANSFORMER, subset_size=len(pixels),
                                  advanced_parameters=advanced)
        out["quantize_s"] = round(time.perf_counter() - start, 1)
        args.out.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(xml), compress_to_fp16=False)
    int8 = create_model(args.model, runtime="openvino", precision="bf16", threads=1)
    int8.forward, int8.model_id = OpenVinoForward(xml, threads=1, precision="bf16"), f"{args.model}@ov-int8"
    sample = sorted((Path(__file__).parents[1] / "tests" / "fixtures" / "dogs").glob("*/*.jpg"))
    batch = torch.stack([bf16.preprocess(Image.open(sample[i % len(sample)]).convert("RGB"))
                         for i in range(args.images)])
    models = {"openvino bf16": bf16, "openvino int8 (nncf)": int8}
    cpu: dict = {(n, bs): [] for n in models for bs in (1, 8)}
    own: dict = {(n, bs): [] for n in models for bs in (1, 8)}  # the calling thread's: nothing else in the process
    for model in models.values():
        model.embed(batch[:8])
    for _ in range(args.rounds):
        for bs in (1, 8):
            for name, model in models.items():
                c, t = time.process_time(), time.thread_time()
                for i in range(0, args.images, bs):
                    model.embed(batch[i:i + bs])
                cpu[name, bs].append(1000 * (time.process_time() - c) / args.images)
                own[name, bs].append(1000 * (time.thread_time() - t) / args.images)
    ref = bf16.embed(batch)
    for name, model in models.items():
        out[name] = {f"cpu_ms_per_image_batch{bs}": round(float(np.median(cpu[name, bs])), 1) for bs in (1, 8)}
        out[name] |= {f"thread_cpu_ms_per_image_batch{bs}": round(float(np.median(own[name, bs])), 1)
                      for bs in (1, 8)}
        out[name]["min_cosine_to_bf16"] = round(float((model.embed(batch) * ref).sum(1).min()), 5)
    if not args.skip_eval:
        int8.forward = OpenVinoForward(xml, precision="bf16")  # every core for the evaluation
        for key, root, kind, split in [("breed", args.data / "imagewoof" / "dev", "breed", "all"),
                                       ("identity", args.data / "dogfacenet", "identity", "heldout"),
                                       ("oxford", args.data / "oxford-pets" / "dogs", "breed", "all")]:
            result = evaluate_dir(int8, root, kind, split=split, progress=False)
            out["openvino int8 (nncf)"][key] = {k: result[k] for k in ("recall@1", "recall@5", "map", "n_images")}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
