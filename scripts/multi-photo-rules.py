"""How the rules that combine several query photos (gallery/multiquery.py) read under the same-dog calibration, and
on dog-id-body without its near-copies (docs/lost-and-found.md, "Several photos of the lost dog"). The queries are
those of `dogsearch eval identity --query-photos` (each photo of a dog with >= 4 photos in turn is the one to find,
the query the dog's next N photos), on the same cached vectors (`--cache-dir`, as given to eval identity).

Prints one JSON line per set, rule and N: recall@1, how often the first result is said *likely* (same_dog >= the
threshold) when it is the dog and when it is another, and for a set with a similar_pairs.csv the recall@1 of the
queries none of whose photos is a near-copy of the photo to find.

    python scripts/multi-photo-rules.py ../shared/data/dogfacenet ../shared/data/dog-id-body --cache-dir DIR
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.eval.retrieval import dir_vectors, load_model  # noqa: E402
from dogsearch.gallery.multiquery import RULES, combined_scores  # noqa: E402
from dogsearch.models.calibration import find  # noqa: E402
from dogsearch.services.embedder.dogs import crop_model_id  # noqa: E402


def near_copies(root: Path) -> set[tuple[str, str]]:
    pairs = root / "similar_pairs.csv"
    if not pairs.is_file():
        return set()
    out = set()
    with pairs.open() as f:
        for row in csv.DictReader(f):
            out |= {(row["path_a"], row["path_b"]), (row["path_b"], row["path_a"])}
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("dirs", type=Path, nargs="+")
    parser.add_argument("--model", help="embedder model name (default: the embedder setting)")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--likely", type=float, default=0.9, help="the SAME_DOG_LIKELY threshold")
    args = parser.parse_args()
    model = load_model(args.model, None)
    calibration = find(crop_model_id(model.model_id))  # the map a search reads these scores with
    for root in args.dirs:
        items, emb, _ = dir_vectors(model, root, "identity", split="heldout", cache_dir=args.cache_dir,
                                    progress=False)
        names = [str(p.relative_to(root)) for p, _ in items]
        near = near_copies(root)
        dogs, dog_of = np.unique([lab for _, lab in items], return_inverse=True)
        for rule in RULES:
            for n in (1, 2, 3):
                right = right_likely = wrong = wrong_likely = clean = clean_hits = 0
                for d in range(len(dogs)):
                    own = np.nonzero(dog_of == d)[0]
                    if len(own) < 4:
                        continue
                    for t in range(len(own)):
                        group = own[[(t + 1 + j) % len(own) for j in range(n)]]
                        scores = combined_scores(emb[group], emb, rule)
                        best = np.full(len(dogs), -np.inf, dtype=np.float32)
                        others = dog_of != d
                        np.maximum.at(best, dog_of[others], scores[others])
                        hit = bool(scores[own[t]] >= best.max())
                        # the first two dogs of the ranked list: a first result is read with its lead (results())
                        ranked = np.sort(np.append(best[np.isfinite(best)], scores[own[t]]))[::-1][:2]
                        likely = calibration is not None and calibration.results(ranked)[0] >= args.likely
                        right, right_likely = right + hit, right_likely + (hit and likely)
                        wrong, wrong_likely = wrong + (not hit), wrong_likely + (not hit and likely)
                        if not any((names[own[t]], names[g]) in near for g in group):
                            clean, clean_hits = clean + 1, clean_hits + hit
                print(json.dumps({
                    "set": root.name, "rule": rule, "query_photos": n, "queries": right + wrong,
                    "recall@1": round(right / (right + wrong), 4),
                    "right_said_likely": round(right_likely / right, 3) if right else None,
                    "wrong_said_likely": round(wrong_likely / wrong, 3) if wrong else None,
                    **({"without_near_copies": {"queries": clean, "recall@1": round(clean_hits / clean, 4)}}
                       if near else {}),
                }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
