"""Rank by a breed fusion, judge by its ViT part (docs/embedder-eval.md, "The CNN's breeds beside v3"): the first
results of the same-dog calibration's held-out searches, with each way of scoring them.

    python scripts/fusion-judged-by-vit.py [--model NAME] [--cache-dir DIR]

A fusion's vector is normalise([v, w sqrt(p)]) with v the base ViT's unit vector, so its first components,
normalised, are the base model's vector exactly. Three ways a search could answer, on the held-out photos of
`dogsearch train calibration` (faces, whole bodies, Imagewoof dev, Oxford's held-out breeds; one gallery, every photo
the query against the others, dogs ranked by their best photo): the base model alone (ranked and judged with its
own map), the fusion alone (its own map), and the fusion ranking the dogs while the first two dogs are judged by their
best base-model cosine with the base model's map. The third keeps the fusion's ranking and the base's verdicts if the
base's map reads the ViT part's cosines as it reads its own, which is what this measures.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.eval import calibrate as C  # noqa: E402
from dogsearch.eval.verification import first_results  # noqa: E402
from dogsearch.models.calibration import load, path_for  # noqa: E402
from dogsearch.models.fusion import fused_dim  # noqa: E402
from dogsearch.services.embedder.dogs import crop_model_id  # noqa: E402

LIKELY, POSSIBLE = 0.9, 0.5  # the gateway's default thresholds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_arguments(p)
    p.set_defaults(model="vit_small_dinov2-lora-dogs-v3-lite0-breeds")
    args = p.parse_args()
    config = json.loads((args.models_dir / args.model / "config.json").read_text())
    base = config["base"]
    embed, vectors_id, sets, _ = C.calibration_sets(args)
    parts = []
    for photo_set in sets:
        chosen = photo_set.parts()["heldout"]
        parts.append((embed(f"{photo_set.name}-heldout", [q for q, _ in chosen]), [lab for _, lab in chosen],
                      photo_set.kind == "breeds"))
    vit_dim = parts[0][0].shape[1] - fused_dim(config["fusion"]["weights"])  # the base's part comes first
    vit_parts = [(v[:, :vit_dim] / np.linalg.norm(v[:, :vit_dim], axis=1, keepdims=True), labels, each_its_own)
                 for v, labels, each_its_own in parts]
    own = load(path_for(vectors_id, args.models_dir))
    base_map = load(path_for(crop_model_id(base), args.models_dir))
    report = {}
    runs = [(f"{base} alone", vit_parts, None, base_map), (f"{args.model} alone", parts, None, own),
            (f"{args.model} ranks, {base} judges", parts, [v for v, _, _ in vit_parts], base_map)]
    for name, rank, judged, cal in runs:
        first, second, right, set_of = first_results(rank, judged)
        p_first = np.array([cal.results([a, b])[0] for a, b in zip(first, second, strict=True)])
        report[name] = {}
        for index, photo_set in enumerate(sets):
            m = set_of == index
            r, q = right[m], p_first[m]
            report[name][photo_set.name] = {
                "queries": int(m.sum()), "right": round(float(r.mean()), 4),
                "right_likely": round(float((r & (q >= LIKELY)).mean()), 4),
                "wrong_likely": round(float((~r & (q >= LIKELY)).mean()), 4),
                "wrong_possible_or_likely": round(float((~r & (q >= POSSIBLE)).mean()), 4)}
        print(json.dumps({name: report[name]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
