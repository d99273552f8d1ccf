"""`dogsearch train embedder` end to end on tiny folders with the fake model: features are cached, a head
is trained and saved under models/<model-id>/ with its config and checksum."""
from __future__ import annotations

import json
import random

from PIL import Image

from dogsearch import cli
from dogsearch.eval import retrieval as ev
from dogsearch.eval.splits import breed_photo_split, identity_split
from dogsearch.models.heads import load_head
from tests.fakes import ColorGridModel


def _folder(root, labels, per, seed):
    rng = random.Random(seed)
    for i, label in enumerate(labels):
        base = (40 + 50 * (i % 4), 40 + 40 * (i // 4 % 4), 200 - 30 * (i % 5))
        (root / label).mkdir(parents=True)
        for j in range(per):
            colour = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in base)
            Image.new("RGB", (16, 16), colour).save(root / label / f"{label}_{j}.png")


def test_train_embedder_cli_writes_a_loadable_head(tmp_path, monkeypatch, capsys):
    breeds = [f"breed{i}" for i in range(4)]
    dogs = [f"dog{i}" for i in range(60)]
    _folder(tmp_path / "breeds", breeds, 24, 0)
    _folder(tmp_path / "dogs", dogs, 3, 1)
    assert any(identity_split(d) == "val" for d in dogs) and any(identity_split(d) == "train" for d in dogs)
    assert any(breed_photo_split(b, f"{b}_{j}.png") == "val" for b in breeds for j in range(24))
    monkeypatch.setattr(ev, "load_model", lambda name, device, **options: ColorGridModel())

    argv = ["train", "embedder", "--model-id", "grid-test-head", "--models-dir", str(tmp_path / "models"),
            "--breed-dir", str(tmp_path / "breeds"), "--identity-dir", str(tmp_path / "dogs"),
            "--breed-per-label", "0", "--breed-val-per-label", "0", "--identity-share", "100",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--epochs", "2",
            "--batch-size", "32", "--ident-p", "16", "--hidden", "16", "--out-dim", "16"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "grid-test-head"
    folder = tmp_path / "models" / "grid-test-head"
    config = json.loads((folder / "config.json").read_text())
    assert config["base"] == "efficientnet_lite0" and config["recipe"]["epochs"] == 2
    assert config["teacher"] == "efficientnet_lite0" and "val_score" in config["validation"]
    assert load_head(folder).out_dim == 16
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 4  # features cached for the next run
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
