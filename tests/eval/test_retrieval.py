"""Leave-one-out retrieval metrics (dogsearch eval breed/identity) on data small enough to check by hand."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dogsearch import cli
from dogsearch.core.judged import JudgedPart, Rerank
from dogsearch.eval import retrieval as ev
from dogsearch.eval.splits import bucket, identity_split
from tests.fakes import ColorGridModel


def test_metrics_match_a_hand_computed_case():
    # unit vectors at 0, ~37, ~53 and 90 degrees; labels A A B B
    emb = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [0, 1]], dtype=np.float32)
    # nearest other: 0->1 (A, hit), 1->2 (B, miss), 2->1 (A, miss), 3->2 (B, hit)
    # AP: q0 = 1, q1 = 1/2 (its A is 2nd), q2 = 1/2, q3 = 1
    m = ev.retrieval_metrics(emb, ["A", "A", "B", "B"])
    assert m["recall@1"] == pytest.approx(0.5)
    assert m["recall@5"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx(0.75)


def test_metrics_as_a_reranking_search_ranks():
    # [ViT part, 0.5 x breed part], normalised: q0's nearest by the whole vector is q2 (another breed, same breed
    # part direction as nothing else), its breed-mate q1 is nearer on the ViT part once the breeds are capped
    def fused(vit, breed):
        v = np.concatenate([np.asarray(vit) / np.linalg.norm(vit), 0.5 * np.asarray(breed) / np.linalg.norm(breed)])
        return v / np.linalg.norm(v)

    emb = np.stack([fused([1, 0], [1, 0]), fused([0.8, 0.6], [0.5, 0.87]), fused([0.75, 0.66], [1, 0.05]),
                    fused([0, 1], [0, 1])]).astype(np.float32)
    labels = ["A", "A", "B", "B"]
    plain = ev.retrieval_metrics(emb, labels)
    part = JudgedPart(2, float(np.sqrt(1.25)), Rerank(1.0, 0.4, 3))
    again = ev.retrieval_metrics(emb, labels, judged=part)
    sims = emb @ emb.T
    assert np.argsort(-np.where(np.eye(4, dtype=bool), -np.inf, sims)[0])[0] == 2  # plain: q0 finds B first
    assert again["recall@1"] > plain["recall@1"]
    # no re-ranking in the part: the plain metrics
    assert ev.retrieval_metrics(emb, labels, judged=JudgedPart(2, float(np.sqrt(1.25)))) == plain


def test_map_averages_precision_over_every_relevant_photo():
    # photos on a circle at 0, 10, 25, 45, 70 degrees, labels A B A B A: rank = angular distance
    # q0: B A B A -> AP (1/2 + 2/4)/2 = 1/2      q1: A A B A -> AP 1/3
    # q2: B B A A -> AP (1/3 + 2/4)/2 = 5/12     q3: A A B A -> AP 1/3     q4: B A B A -> AP 1/2
    angles = np.radians([0, 10, 25, 45, 70])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    m = ev.retrieval_metrics(emb, ["A", "B", "A", "B", "A"], ks=(1, 2, 4))
    assert m["map"] == pytest.approx((1 / 2 + 1 / 3 + 5 / 12 + 1 / 3 + 1 / 2) / 5)
    assert m["recall@1"] == 0.0
    assert m["recall@2"] == pytest.approx(2 / 5)  # only q0 and q4 find one in their first two
    assert m["recall@4"] == 1.0
    shuffled = [4, 2, 0, 3, 1]  # the order of the photos does not matter
    assert ev.retrieval_metrics(emb[shuffled], [["A", "B", "A", "B", "A"][i] for i in shuffled])["map"] \
        == pytest.approx(m["map"])


def test_a_label_with_one_photo_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        ev.retrieval_metrics(np.eye(3, dtype=np.float32), ["A", "A", "B"])


def _write(folder, name, color):
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), color).save(folder / name)


@pytest.fixture
def dogs_dir(tmp_path):
    root = tmp_path / "dogs"
    _write(root / "rex", "a.jpg", (220, 30, 30))
    _write(root / "rex", "b.jpg", (200, 40, 40))
    _write(root / "fido", "a.jpg", (30, 30, 220))
    _write(root / "fido", "b.png", (40, 50, 200))
    _write(root / "lonely", "a.jpg", (30, 210, 30))  # one photo: not part of leave-one-out
    return root


def test_evaluate_dir_with_the_fake_model(dogs_dir):
    result = ev.evaluate_dir(ColorGridModel(), dogs_dir, "identity", progress=False)
    assert result["n_images"] == 4 and result["n_labels"] == 2
    assert result["recall@1"] == 1.0 and result["map"] == 1.0
    assert result["model"] == "test-color-grid" and result["images/s"] > 0


def test_cli_prints_one_json_object(dogs_dir, monkeypatch, capsys):
    monkeypatch.setattr(ev, "load_model", lambda name, device: ColorGridModel())
    assert cli.main(["eval", "breed", str(dogs_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"recall@1", "recall@5", "map", "images/s", "model", "n_images"} <= set(out)
    assert out["n_images"] == 4 and out["recall@1"] == 1.0


def test_cli_reports_the_search_with_query_expansion_when_asked(dogs_dir, monkeypatch, capsys):
    monkeypatch.setattr(ev, "load_model", lambda name, device: ColorGridModel())
    assert cli.main(["eval", "identity", str(dogs_dir), "--json"]) == 0
    assert "search" not in json.loads(capsys.readouterr().out)
    assert cli.main(["eval", "identity", str(dogs_dir), "--query-expansion", "1", "--json"]) == 0
    search = json.loads(capsys.readouterr().out)["search"]
    assert search["query_expansion"] == {"neighbours": 1, "power": 0.0}
    assert search["recall@1"] == 1.0 and search["map"] == 1.0
    assert cli.main(["eval", "identity", str(dogs_dir), "--query-expansion", "-1"]) == 2
    assert "neighbours must be" in capsys.readouterr().err


def test_cli_rejects_a_missing_folder(tmp_path, capsys):
    assert cli.main(["eval", "identity", str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_identity_split_is_deterministic_and_keeps_a_fifth_out():
    ids = [str(i) for i in range(2000)]
    held = [d for d in ids if identity_split(d) == "heldout"]
    assert 0.17 < len(held) / len(ids) < 0.23
    assert bucket("1") == bucket("1") and identity_split("1") == identity_split("1")


def test_unseen_breeds_split_whole_breeds_into_val_and_heldout():
    from dogsearch.eval.splits import select, unseen_breed_split

    oxford = ["american_bulldog", "basset_hound", "boxer", "english_cocker_spaniel", "german_shorthaired",
              "havanese", "keeshond", "miniature_pinscher", "pomeranian", "saint_bernard", "scottish_terrier",
              "staffordshire_bull_terrier", "yorkshire_terrier"]
    val = [b for b in oxford if unseen_breed_split(b) == "val"]
    assert val == ["american_bulldog", "miniature_pinscher", "pomeranian", "scottish_terrier"]
    items = [(Path(f"{b}/{i}.jpg"), b) for b in oxford for i in range(3)]
    held = select(items, "unseen-breed", "heldout")
    assert {lab for _, lab in held} == set(oxford) - set(val) and len(held) == 27


def test_cli_holds_out_whole_breeds_with_unseen_breeds_and_takes_either_spelling_of_heldout(tmp_path, monkeypatch,
                                                                                            capsys):
    """The README's Oxford held-out figures come from `eval breed --unseen-breeds --split heldout`; a breed folder's
    own split has no held-out photos, which is said rather than "no label with at least 2 photos"."""
    root = tmp_path / "oxford"
    for breed, colour in (("basset_hound", (200, 30, 30)), ("boxer", (30, 200, 30)), ("pomeranian", (30, 30, 200))):
        _write(root / breed, "a.jpg", colour)
        _write(root / breed, "b.jpg", tuple(c + 20 for c in colour))
    monkeypatch.setattr(ev, "load_model", lambda name, device: ColorGridModel())
    assert cli.main(["eval", "breed", str(root), "--split", "heldout"]) == 2
    assert "--unseen-breeds --split heldout" in capsys.readouterr().err
    for spelling in ("heldout", "held-out"):
        assert cli.main(["eval", "breed", str(root), "--unseen-breeds", "--split", spelling, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["n_labels"], out["n_images"], out["split"]) == (2, 4, "heldout")  # pomeranian is val
    assert cli.parser().parse_args(["eval", "identity", "d", "--split", "held-out"]).split == "heldout"
    assert cli.parser().parse_args(["eval", "detect", "d", "--split", "heldout"]).split == "held-out"


def test_the_search_s_figures_follow_the_model_s_reranking(dogs_dir):
    """A model whose calibration re-ranks (the shipped default) gets the search's figures, ranked as it ranks."""
    from tests.gateway.test_samedog import FusedColorModel

    shipped = ev.searched_part("vit_small_dinov2-lora-dogs-v3-lite0-breeds@dogcrop-m0.3")
    assert shipped is not None and shipped.rerank == Rerank(0.75, 0.4, 100) and shipped.dims == 384
    assert ev.searched_part("test-color-grid") is None  # no calibration: no re-ranking, no search figures
    model = FusedColorModel()
    part = JudgedPart(48, float(np.sqrt(1 + model.W ** 2)), Rerank(1.0, 0.5, 100))
    result = ev.evaluate_dir(model, dogs_dir, "identity", progress=False, judged=part)
    assert result["search"]["rerank"] == {"weight": 1.0, "cap": 0.5, "depth": 100}
    assert result["search"]["map"] == 1.0 and "search" not in ev.evaluate_dir(model, dogs_dir, "identity",
                                                                            progress=False)
