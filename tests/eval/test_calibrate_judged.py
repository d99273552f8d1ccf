"""`dogsearch train calibration --judged-by-base`: a fusion's file is its base's map with the part it reads, checked
against the base's own file, and measured on held-out searches both ways (dogsearch/eval/calibrate.py)."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np
import pytest

from dogsearch.eval.calibrate import judged_by_base
from dogsearch.models import calibration as cal
from dogsearch.models.calibration import Calibration

VIT, BREEDS = 8, 119  # a fusion's parts: [vit, 0.2 * breeds]


@dataclass
class Photos:
    """A held-out set as PhotoSet gives it: (path, label) pairs."""

    name: str
    labels: list[str]
    kind: str = "dogs"

    def parts(self):
        return {"heldout": [(f"{self.name}/{n}.jpg", lab) for n, lab in enumerate(self.labels)]}


def fusion_vectors(labels: list[str], rng) -> np.ndarray:
    dogs = {lab: rng.normal(size=VIT) for lab in set(labels)}
    vit = np.stack([dogs[lab] + 0.3 * rng.normal(size=VIT) for lab in labels])
    breeds = np.abs(rng.normal(size=(len(labels), BREEDS)))
    vit /= np.linalg.norm(vit, axis=1, keepdims=True)
    breeds /= np.linalg.norm(breeds, axis=1, keepdims=True)
    whole = np.concatenate([vit, 0.2 * breeds], axis=1)
    return (whole / np.linalg.norm(whole, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def models(tmp_path):
    base = Calibration("base@dogcrop-m0.3", "isotonic", {"x": [0.0, 0.7, 1.0], "y": [0.0, 0.5, 1.0]}, 0.5,
                       first={"a": 50.0, "b": -2.0})
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / cal.FILE_NAME).write_text(json.dumps(base.to_json()))
    (tmp_path / "fused").mkdir()
    config = {"model_id": "fused", "kind": "fusion", "base": "base", "fusion": {"weights": {"vit": 1.0, "breeds": 0.2}}}
    (tmp_path / "fused" / "config.json").write_text(json.dumps(config))
    return tmp_path, base, config


def run(models_dir, dry_run=False):
    rng = np.random.default_rng(0)
    sets = [Photos("faces", [f"dog{i // 3}" for i in range(30)])]
    vectors = {s.name: fusion_vectors(s.labels, rng) for s in sets}
    args = argparse.Namespace(models_dir=models_dir, dry_run=dry_run, json=True)
    return judged_by_base(args, lambda name, paths: vectors[name.split("-")[0]], "fused@dogcrop-m0.3", sets)


def test_the_file_is_the_base_s_map_on_the_vit_part(models, capsys):
    models_dir, base, _ = models
    assert run(models_dir) == 0
    written = cal.find("fused@dogcrop-m0.3", models_dir)
    assert written.part == {"dims": VIT, "scale": pytest.approx(np.sqrt(1.04))}
    assert (written.method, written.params, written.first) == (base.method, base.params, base.first)
    assert written.extra["judged_by"] == {"vectors": "base@dogcrop-m0.3", "sha256": base.to_json()["sha256"]}
    report = json.loads(capsys.readouterr().out)
    runs = report["first_results"]
    assert list(runs) == ["base@dogcrop-m0.3 alone", "fused@dogcrop-m0.3 ranks, its part judges"]
    assert all(r["faces"]["queries"] == 30 and 0 <= r["faces"]["right_likely"] <= r["faces"]["right"] <= 1
               for r in runs.values())


def test_a_dry_run_writes_nothing_and_a_projected_fusion_or_a_base_without_a_file_is_refused(models, capsys):
    models_dir, _, config = models
    assert run(models_dir, dry_run=True) == 0 and cal.find("fused@dogcrop-m0.3", models_dir) is None
    projected = {**config, "fusion": {**config["fusion"], "projection": {"out_dim": 64, "sha256": "0" * 64}}}
    (models_dir / "fused" / "config.json").write_text(json.dumps(projected))
    assert run(models_dir) == 2 and "unprojected" in capsys.readouterr().err
    (models_dir / "fused" / "config.json").write_text(json.dumps(config))
    (models_dir / "base" / cal.FILE_NAME).unlink()
    assert run(models_dir) == 2 and "the base's calibration" in capsys.readouterr().err
