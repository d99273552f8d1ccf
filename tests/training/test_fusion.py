"""The fusion trainer on synthetic parts: weights are chosen by the validation sets alone, and a learned projection
is kept only when it beats PCA on them."""
from __future__ import annotations

from pathlib import Path

import torch

from dogsearch.training.fusion import train as T


def _parts(n_labels: int, per_label: int, *, breed_signal: float, vit_signal: float, seed: int) -> dict:
    """Photos whose ViT vector knows the label by ``vit_signal`` and whose ImageNet logits by ``breed_signal``."""
    g = torch.Generator().manual_seed(seed)
    labels = [f"l{i}" for i in range(n_labels) for _ in range(per_label)]
    ids = torch.tensor([i for i in range(n_labels) for _ in range(per_label)])
    centres = torch.randn(n_labels, 384, generator=g)
    vit = vit_signal * centres[ids] + torch.randn(len(ids), 384, generator=g)
    logits = torch.randn(len(ids), 1000, generator=g)
    logits[torch.arange(len(ids)), 151 + ids] += breed_signal  # one breed class a label
    return {"paths": [f"{label}/{i}.jpg" for i, label in enumerate(labels)], "labels": labels, "vit": vit,
            "cnn": torch.randn(len(ids), 1280, generator=g), "logits": logits}


def _sets(breed_signal: float) -> dict:
    return {name: _parts(6, 5, breed_signal=breed_signal, vit_signal=0.15, seed=i)
            for i, name in enumerate(T.VAL_SETS)}


def test_breed_probabilities_are_chosen_when_they_help_on_validation():
    grid = T.weight_grid([0.0], [0.0, 1.0])
    weights, rows = T.choose_weights(_sets(breed_signal=8.0), grid)
    assert weights == {"vit": 1.0, "cnn": 0.0, "breeds": 1.0} and len(rows) == 2
    assert rows[1]["val_score"] > rows[0]["val_score"]
    weights, _ = T.choose_weights(_sets(breed_signal=0.0), grid)  # noise logits: left out
    assert weights["breeds"] == 0.0


def test_a_fusion_that_costs_one_validation_set_too_much_is_not_chosen():
    sets = _sets(breed_signal=8.0)
    sets["dfn_val"]["logits"] = torch.randn(30, 1000, generator=torch.Generator().manual_seed(5)) * 4  # no signal
    grid = T.weight_grid([0.0], [0.0, 2.0])
    _, rows = T.choose_weights(sets, grid, max_drop=1.0)
    assert rows[1]["val"]["dfn_val"]["map"] < rows[0]["val"]["dfn_val"]["map"] - 0.01  # it does cost the dogs
    assert rows[1]["val_score"] > rows[0]["val_score"]  # though it wins on average
    weights, rows = T.choose_weights(sets, grid, max_drop=0.005)
    assert weights["breeds"] == 0.0 and not rows[1]["within_max_drop"]


def test_pca_projection_keeps_cosines_of_low_rank_data():
    x = torch.randn(200, 8) @ torch.randn(8, 64)
    layer = T.pca_projection(x, 8)
    z = torch.nn.functional.normalize(layer(x), dim=1)
    xn = torch.nn.functional.normalize(x, dim=1)
    torch.testing.assert_close(z @ z.T, xn @ xn.T, atol=1e-4, rtol=0)


def test_projection_training_returns_the_best_validation_epoch():
    sets = _sets(breed_signal=4.0)
    train = {"breeds": _parts(6, 8, breed_signal=4.0, vit_signal=0.15, seed=10)}
    weights = {"vit": 1.0, "breeds": 1.0}
    layer, history = T.train_projection(train, weights, 32, epochs=3, sets=sets, batch=32)
    assert [h["epoch"] for h in history] == [0, 1, 2, 3] and layer.out_features == 32
    best = max(h["val_score"] for h in history)
    assert abs(T.val_score(T.evaluate(sets, weights, layer, T.VAL_SETS)) - best) < 1e-3


def test_a_cached_set_is_cut_into_whole_breeds():
    data = _parts(3, 2, breed_signal=0.0, vit_signal=0.0, seed=0)
    keep = [(Path(p), lab) for p, lab in zip(data["paths"], data["labels"], strict=True) if lab != "l1"]
    part = T.subset(data, keep)
    assert part["labels"] == ["l0", "l0", "l2", "l2"] and part["vit"].shape == (4, 384)
    torch.testing.assert_close(part["vit"][2], data["vit"][4])


def test_projection_epochs_that_cost_a_validation_set_too_much_are_not_kept():
    sets = _sets(breed_signal=4.0)
    train = {"breeds": _parts(6, 8, breed_signal=4.0, vit_signal=0.15, seed=10)}
    weights = {"vit": 1.0, "breeds": 1.0}
    _, history = T.train_projection(train, weights, 32, epochs=3, sets=sets, batch=32)
    maps = [h["val"]["dfn_val"]["map"] for h in history]
    # a floor on the dogs between the epochs' figures: only the epochs at or above it may be returned
    floor = {"dfn_val": sorted(maps)[len(maps) // 2]}
    layer, history = T.train_projection(train, weights, 32, epochs=3, sets=sets, batch=32, floor=floor)
    kept = [h for h in history if h["within_max_drop"]]
    assert kept and len(kept) < len(history)
    assert all(h["within_max_drop"] == (h["val"]["dfn_val"]["map"] >= floor["dfn_val"]) for h in history)
    score = T.val_score(T.evaluate(sets, weights, layer, T.VAL_SETS))
    assert abs(score - max(h["val_score"] for h in kept)) < 1e-3
    layer, _ = T.train_projection(train, weights, 32, epochs=2, sets=sets, batch=32, floor={"dfn_val": 2.0})
    assert layer is None  # mAP never reaches 2: nothing is kept


def test_a_capped_breed_reranking_is_chosen_only_within_the_rule_and_when_it_beats_the_plain_ranking():
    sets = _sets(breed_signal=8.0)
    weights = {"vit": 1.0, "cnn": 0.0, "breeds": 0.2}
    floor = T.floor_of(T.evaluate(sets, {"vit": 1.0}, names=T.VAL_SETS), 0.005)
    grid = T.rerank_grid([0.5, 1.0], [0.5], depth=100)
    chosen, rows = T.choose_rerank(sets, weights, grid, floor)
    plain = T.val_score(T.evaluate(sets, weights, names=T.VAL_SETS))
    assert chosen in grid and len(rows) == 2
    assert max(r["val_score"] for r in rows if r["within_max_drop"]) > plain  # the breeds know what the ViT hardly does
    # a floor no re-ranking reaches: none is chosen, whatever its mean
    chosen, rows = T.choose_rerank(sets, weights, grid, {n: 1.01 for n in T.VAL_SETS})
    assert chosen is None and not any(r["within_max_drop"] for r in rows)
    # and one that only reaches the plain ranking's score is not worth a re-ranking
    chosen, _ = T.choose_rerank(_sets(breed_signal=0.0), weights, grid, {n: -1.0 for n in T.VAL_SETS})
    assert chosen is None or T.val_score(T.evaluate(_sets(0.0), weights, names=T.VAL_SETS, rerank=chosen)) > \
        T.val_score(T.evaluate(_sets(0.0), weights, names=T.VAL_SETS))
