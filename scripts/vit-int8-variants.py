"""Faster variants of the default ViT on ONNX Runtime (issue 20; docs/embedder-eval.md, "Mixed int8 and fewer
tokens"): an input size (fewer patches) and a quantisation recipe each, embedded as the service embeds (the model's
own preprocess, one image a run as the onnxruntime embedder runs them: dynamic int8 scales its activations by the
whole batch, so the batch changes its vectors) and scored with the metric code of `dogsearch eval`.

A variant is ``SIZE:RECIPE`` or ``SIZE-tomeR:RECIPE`` (token merging, r tokens a block: ``224-tome16:fp32``,
dogsearch/models/tome.py): ``224:fp32``, ``196:int8`` (dynamic, per channel: today's ``@int8``),
``224:int8-x=REGEX`` (dynamic, nodes whose names match REGEX left in fp32), ``224:qdq`` (static int8, QDQ, per
channel, calibrated on training photos). Sets:

* ``cos``: 64 training photos (Imagewoof train, DogFaceNet train dogs): cosine to ``224:fp32``'s vectors;
* validation: ``iw-val`` (Imagewoof train's val split, 40 a breed), ``dfn-val`` (DogFaceNet val dogs), ``ox-val``
  (Oxford's 4 val breeds);
* held out (report once): ``iw-dev``, ``dfn-heldout``, ``ox-all`` (Oxford's 13 breeds, the doc's figure) and
  ``ox-heldout`` (its 9 held-out breeds).

Vectors and exports are cached in --cache (per variant and set), so adding a set or a variant embeds only what is new.

    python scripts/vit-int8-variants.py --variants 224:fp32,224:int8 --sets cos,iw-val,dfn-val,ox-val
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dogsearch.eval.retrieval import retrieval_metrics  # noqa: E402
from dogsearch.eval.splits import labelled_images, select  # noqa: E402
from dogsearch.inference import runtimes  # noqa: E402
from dogsearch.models.embedding import EmbeddingModel  # noqa: E402
from dogsearch.models.registry import DEFAULT_MODEL, build_backbone  # noqa: E402
from dogsearch.models.tome import with_token_merging  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT = ("iw-dev", "dfn-heldout", "ox-all", "ox-heldout")


def photo_sets(data: Path) -> dict[str, list[tuple[Path, str]]]:
    def min2(items):
        counts: dict[str, int] = {}
        for _, lab in items:
            counts[lab] = counts.get(lab, 0) + 1
        return [(p, lab) for p, lab in items if counts[lab] >= 2]

    def per_label(items, n):
        seen: dict[str, int] = {}
        out = []
        for p, lab in items:
            seen[lab] = seen.get(lab, 0) + 1
            if seen[lab] <= n:
                out.append((p, lab))
        return out

    woof_train = labelled_images(data / "imagewoof" / "train")
    faces = labelled_images(data / "dogfacenet")
    oxford = labelled_images(data / "oxford-pets" / "dogs")
    train_woof = select(woof_train, "breed", "train")
    train_faces = select(faces, "identity", "train")
    return {
        "cos": train_woof[::len(train_woof) // 32][:32] + train_faces[::len(train_faces) // 32][:32],
        "calib": train_woof[7::len(train_woof) // 64][:64] + train_faces[7::len(train_faces) // 64][:64],
        "iw-val": per_label(select(woof_train, "breed", "val"), 40),
        "dfn-val": min2(select(faces, "identity", "val")),
        "ox-val": select(oxford, "unseen-breed", "val"),
        "iw-dev": labelled_images(data / "imagewoof" / "dev"),
        "dfn-heldout": min2(select(faces, "identity", "heldout")),
        "ox-all": oxford,
        "ox-heldout": select(oxford, "unseen-breed", "heldout"),
    }


def resized(module: torch.nn.Module, data_config: dict, size: int) -> tuple[torch.nn.Module, dict]:
    """The ViT at ``size`` px: its position embedding resampled to the new patch grid (bicubic, as DINOv2 does),
    the same crop share of the photo (crop_pct) at fewer pixels."""
    from dogsearch.models.dinov2 import with_input_size

    return with_input_size(module, size), {**data_config, "input_size": (3, size, size)}


def export(module, shape: str, recipe: str, cache: Path, calib: list[Path], data_config: dict) -> Path:
    size = data_config["input_size"][-1]
    fp32 = cache / f"vit-{shape}.fp32.onnx"
    if not fp32.is_file():
        runtimes._export(module, (3, size, size), fp32)
    if recipe == "fp32":
        return fp32
    target = cache / f"vit-{shape}.{hashlib.sha256(recipe.encode()).hexdigest()[:12]}.onnx"
    if target.is_file():
        return target
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    exclude = _excluded(fp32, recipe.split("-x=", 1)[1]) if "-x=" in recipe else []
    if recipe.startswith("int8"):
        quantize_dynamic(str(fp32), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=exclude)
    elif recipe.startswith("qdq"):
        model = EmbeddingModel(module, model_id="calib", data_config=data_config, device=torch.device("cpu"))

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.items = iter(calib)

            def get_next(self):
                path = next(self.items, None)
                if path is None:
                    return None
                with Image.open(path) as im:
                    return {"pixels": model.normalize(model.preprocess(im.convert("RGB"))[None]).numpy()}

        quantize_static(str(fp32), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, nodes_to_exclude=exclude,
                        op_types_to_quantize=["MatMul", "Conv", "Gemm"],
                        extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": False})
    else:
        raise ValueError(f"unknown recipe {recipe!r}")
    return target


def _excluded(path: Path, pattern: str) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in ("MatMul", "Conv", "Gemm") and re.search(pattern, n.name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", required=True)
    parser.add_argument("--sets", default="cos,iw-val,dfn-val,ox-val")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/int8-cache"))
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--held-out", action="store_true", help="allow the held-out sets (report once)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = photo_sets(args.data)
    wanted = args.sets.split(",")
    if any(s in HELD_OUT for s in wanted) and not args.held_out:
        parser.error("held-out sets need --held-out: choose on the validation sets, report the held-out ones once")
    args.cache.mkdir(parents=True, exist_ok=True)
    module, _, data_config = build_backbone(args.model)
    out = {}
    for variant in args.variants.split(","):
        shape, recipe = variant.split(":", 1)
        size_s, _, r = shape.partition("-tome")
        net, config = resized(module, data_config, int(size_s))
        if r:
            net = with_token_merging(net, int(r))
        path = export(net, shape, recipe, args.cache, [p for p, _ in sets["calib"]], config)
        model = EmbeddingModel(net, model_id=variant, data_config=config, device=torch.device("cpu"),
                               forward=runtimes.OnnxForward(path, threads=1))
        row: dict = {}
        for name in wanted:
            base = "ox-all" if name.startswith("ox-") else name  # Oxford embedded once, scored by split
            vec_path = args.cache / f"{re.sub(r'[^A-Za-z0-9._-]', '_', variant)}.{base}.npy"
            if vec_path.is_file():
                vecs = np.load(vec_path)
            else:
                cpu = time.thread_time()
                vecs = np.concatenate([_embed(model, p) for p, _ in sets[base]])
                np.save(vec_path, vecs)
                row[f"{base}_cpu_ms"] = round(1000 * (time.thread_time() - cpu) / len(sets[base]), 1)
            if name == "cos":
                ref = np.load(args.cache / "224_fp32.cos.npy") if variant != "224:fp32" else vecs
                cos = (vecs * ref).sum(1)
                row["cos"] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 6)}
                continue
            keep = {p for p, _ in sets[name]}
            idx = [i for i, (p, _) in enumerate(sets[base]) if p in keep]
            labels = [sets[base][i][1] for i in idx]
            row[name] = {k: round(v, 4) for k, v in retrieval_metrics(vecs[idx], labels).items()}
        out[variant] = row
        print(json.dumps({variant: row}), flush=True)


def _embed(model: EmbeddingModel, path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return model.embed(model.preprocess(im.convert("RGB"))[None])


if __name__ == "__main__":
    main()
