"""Does `rerank=pose` help? Leave-one-out breed retrieval on DIR/<breed>/<photo> with and without it.

    python -m dogsearch.eval.rerank ../shared/data/imagewoof/dev [--json]

Each photo is a query against all the others: the embedder's cosine order, then the same order with the best
k x depth re-ranked by the gateway's rule (dogsearch/pose/rerank.py) at several weights. Prints precision@k
(share of the top k of the query's breed) and recall@1 for each.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from dogsearch.pose.rerank import rerank
from dogsearch.services.pose.app import pipeline_from_settings
from dogsearch.services.pose.settings import PoseSettings

WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--per-breed", type=int, help="only the first N photos of each breed")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from dogsearch.models.registry import create_model

    paths = sorted(p for p in args.dir.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if args.per_breed:
        paths = [p for p in paths if sorted(p.parent.glob("*")).index(p) < args.per_breed]
    breeds = [p.parent.name for p in paths]
    images = [Image.open(p).convert("RGB") for p in paths]
    embedder = create_model()
    vectors = embedder.embed_images(images)
    pipeline = pipeline_from_settings(PoseSettings())
    poses = [pipeline.run(im) for im in tqdm(images, desc="pose", unit="photo")]

    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    result = {"n_photos": len(paths), "k": args.k, "depth": args.depth, "pose_model": pipeline.model_id,
              "weights": {}}
    for weight in WEIGHTS:
        precision, top1 = [], []
        for q in range(len(paths)):
            order = np.argsort(-sims[q])[: args.k * args.depth]
            hits = [{"id": int(i), "score": float(sims[q, i])} for i in order]
            ranked = rerank(poses[q], [(h["score"], h) for h in hits], [poses[i] for i in order], weight)
            top = [h["id"] for _, h, _ in ranked[: args.k]]
            precision.append(np.mean([breeds[i] == breeds[q] for i in top]))
            top1.append(breeds[top[0]] == breeds[q])
        result["weights"][str(weight)] = {"precision@k": round(float(np.mean(precision)), 4),
                                          "recall@1": round(float(np.mean(top1)), 4)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['n_photos']} photos, k={args.k}, re-ranking the best {args.k * args.depth}")
        for weight, m in result["weights"].items():
            print(f"  weight {weight:>5}: precision@{args.k} {m['precision@k']:.4f}  recall@1 {m['recall@1']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
