"""Query expansion (gallery/expansion.py) on every set, chosen on the validation sets (docs/embedder-eval.md, "Query
expansion"): leave-one-out R@1 / R@5 / R@10 / mAP of the embedder's vectors, plain and with each (neighbours,
power), through the eval's own code (dogsearch eval breed|identity --query-expansion N gives the held-out rows), ranked
as the model's search ranks (a model whose calibration re-ranks: its re-ranking, on the expanded query's parts).

    python scripts/query-expansion.py [--model NAME] [--cache-dir DIR]

The validation sets: Imagewoof train's val photos, DogFaceNet's val dogs, Oxford's 4 val breeds, dog-id-body's val
dogs; held out: Imagewoof dev, DogFaceNet's held-out dogs, Oxford's 9 held-out breeds, dog-id-body's held-out dogs.
The rule: the best mean validation mAP among the settings that cost no validation set any R@1.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.eval.retrieval import load_model, retrieval_metrics, searched_part  # noqa: E402
from dogsearch.eval.sets import choose_keeping_r1, named_sets  # noqa: E402
from dogsearch.gallery.expansion import Expansion  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GRID = [(0, 1.0)] + [(n, a) for n in (1, 2, 3, 5) for a in (0.0, 1.0, 3.0)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/dogsearch-query-expansion"))
    args = parser.parse_args()
    model = load_model(args.model, None)
    data = named_sets(model, DATA, args.cache_dir)
    judged = searched_part(model.model_id)
    rows = {}
    for n, power in GRID:
        expansion = Expansion(n, power)
        rows[(n, power)] = {name: retrieval_metrics(emb, labels, ks=(1, 5, 10), expansion=expansion, judged=judged)
                            for name, (emb, labels) in data.items()}
    chosen = choose_keeping_r1(rows, (0, 1.0), lambda key: "neighbours {}, power {:g}".format(*key))
    print(json.dumps({"model": model.model_id, "rerank": None if judged is None or judged.rerank is None else
                      vars(judged.rerank), "chosen": {"neighbours": chosen[0], "power": chosen[1]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
