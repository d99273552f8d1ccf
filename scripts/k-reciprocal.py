"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding", CVPR
2017) of each search's first M dogs, tried on every set and chosen on the validation sets (docs/embedder-eval.md,
"k-reciprocal re-ranking"): leave-one-out R@1 / R@5 / R@10 / mAP of the default model as it ranks (its re-ranking
included), then with each (M, k1, k2, lambda).

It is computed on the query and its first M candidates alone, as a search could with the M vectors the store
returns: the candidates' k1-reciprocal neighbours among them (expanded by their k1/2-reciprocal ones), the Jaccard
distance of those neighbourhoods (k2: each neighbourhood averaged over its k2 nearest), mixed with the cosine
distance by lambda.

    python scripts/k-reciprocal.py [--model NAME] [--cache-dir DIR]

The sets and the rule are scripts/query-expansion.py's: the best mean validation mAP among the settings that cost
no validation set any R@1 (the plain ranking when none does).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dogsearch.eval.retrieval import load_model, ranked_metrics, searched_part  # noqa: E402
from dogsearch.eval.sets import choose_keeping_r1, named_sets  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
GRID = list(itertools.product([50, 100], [10, 20], [1, 6], [0.1, 0.3, 0.6]))


def k_reciprocal(dist: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """`dist`: (n, n) distances among the query (row 0) and its candidates, in [0, 1]. The query's re-ranked
    distances to all n."""
    n = dist.shape[0]
    rank = np.argsort(dist, axis=1, kind="stable")
    pos = np.empty_like(rank)
    pos[np.arange(n)[:, None], rank] = np.arange(n)[None, :]

    def reciprocal(k: int) -> np.ndarray:
        near = pos <= k  # near[i, j]: j among i's k nearest (i itself the first)
        return near & near.T

    R, half = reciprocal(k1), reciprocal(int(np.around(k1 / 2)))
    overlap = half.astype(np.float32) @ R.T.astype(np.float32)  # [j, i]: |half[j] & R[i]|
    grows = R & (overlap.T > 2 / 3 * half.sum(axis=1)[None, :])  # j of R[i] whose own set lies mostly in R[i]
    kept = R | ((grows.astype(np.float32) @ half.astype(np.float32)) > 0)
    weights = np.exp(-dist) * kept
    V = weights / weights.sum(axis=1, keepdims=True)
    if k2 > 1:
        V = V[rank[:, :k2]].mean(axis=1)
    jaccard = 1 - np.minimum(V[0], V).sum(axis=1) / np.maximum(np.maximum(V[0], V).sum(axis=1), 1e-12)
    return (1 - lam) * jaccard + lam * dist[0]


def reranked(emb: np.ndarray, served: np.ndarray, m: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """`served` (each photo's scores as the model's search ranks) with every photo's first `m` ranked again."""
    cos = emb @ emb.T
    out = served - 10.0
    for i in range(len(emb)):
        first = np.argsort(-served[i], kind="stable")[:m]
        group = np.concatenate([[i], first])
        dist = np.clip(2 - 2 * cos[np.ix_(group, group)], 0, None)
        out[i, first] = 10.0 - k_reciprocal(dist / max(dist.max(), 1e-12), k1, k2, lam)[1:]
    np.fill_diagonal(out, -np.inf)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/dogsearch-query-expansion"))
    args = parser.parse_args()
    model = load_model(args.model, None)
    judged = searched_part(model.model_id)
    sets = {}
    for name, (emb, labels) in named_sets(model, DATA, args.cache_dir).items():
        emb = np.asarray(emb, dtype=np.float32)
        sims = emb @ emb.T
        np.fill_diagonal(sims, -np.inf)
        sets[name] = (emb, labels, sims if judged is None else judged.searched(emb, sims, emb))
    rows = {None: {name: ranked_metrics(served, labels, (1, 5, 10)) for name, (_, labels, served) in sets.items()}}
    for setting in GRID:
        rows[setting] = {name: ranked_metrics(reranked(emb, served, *setting), labels, (1, 5, 10))
                         for name, (emb, labels, served) in sets.items()}
    chosen = choose_keeping_r1(rows, None, lambda key: "plain" if key is None else
                               "M {}, k1 {}, k2 {}, lambda {:g}".format(*key))
    named = "plain" if chosen is None else dict(zip(("m", "k1", "k2", "lambda"), chosen, strict=True))
    print(json.dumps({"model": model.model_id, "chosen": named}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
