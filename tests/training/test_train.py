"""A few steps of head training on tiny fake features: the loss falls, a resumed run is identical,
and the saved head loads by name through create_model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dogsearch.training.embedder.config import TrainConfig
from dogsearch.training.embedder.losses import supcon
from dogsearch.training.embedder.train import Split, TrainData, Trainer


def _split(n_labels: int, per: int, dim: int, seed: int) -> Split:
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_labels, dim, generator=gen)
    labels = torch.arange(n_labels).repeat_interleave(per)
    x = centres[labels] * 0.3 + torch.randn(len(labels), dim, generator=gen)  # weak, noisy clusters
    x = torch.nn.functional.normalize(x, dim=1)
    return Split(x, labels, teacher=x.clone())


@pytest.fixture
def data() -> TrainData:
    return TrainData(breed=_split(4, 12, 32, 0), identity=_split(8, 4, 32, 1),
                     breed_val=_split(4, 4, 32, 2), identity_val=_split(8, 2, 32, 3))


def _config(**kw) -> TrainConfig:
    return TrainConfig(**({"epochs": 2, "batch_size": 24, "ident_p": 8, "ident_k": 4, "hidden": 16,
                           "out_dim": 16, "proj_dim": 8, "lr": 1e-2, "warmup_epochs": 0.0} | kw))


def _label_loss(trainer: Trainer, split: Split) -> float:
    return float(supcon(torch.from_numpy(trainer.embed(split.features)), split.labels))


def test_training_lowers_the_loss(data, tmp_path):
    trainer = Trainer(_config(epochs=10), data, tmp_path)
    before = _label_loss(trainer, data.breed)
    state = trainer.fit(log=lambda _: None)
    assert _label_loss(trainer, data.breed) < before
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(1, 11))
    assert {"loss", "val_breed_recall@1", "val_identity_recall@1", "val_score"} <= set(log[0])
    assert 1 <= state.best_epoch <= 10


def test_a_resumed_run_is_identical_to_an_uninterrupted_one(data, tmp_path):
    straight = Trainer(_config(), data, tmp_path / "a")
    straight.fit(log=lambda _: None)

    first = Trainer(_config(), data, tmp_path / "b")
    first.fit(log=lambda _: None, stop_after=1)
    resumed = Trainer(_config(), data, tmp_path / "b")
    messages = []
    resumed.fit(resume=True, log=messages.append)
    assert messages[0] == "resumed after epoch 1"
    for key, value in straight.head.state_dict().items():
        assert torch.equal(value, resumed.head.state_dict()[key]), key
    assert straight.state.history == resumed.state.history


def test_resume_refuses_a_checkpoint_of_other_settings(data, tmp_path):
    Trainer(_config(), data, tmp_path).fit(log=lambda _: None, stop_after=1)
    with pytest.raises(ValueError, match="other settings"):
        Trainer(_config(lr=5e-3), data, tmp_path).fit(resume=True, log=lambda _: None)


def test_the_same_seed_gives_the_same_head(data, tmp_path):
    a = Trainer(_config(epochs=1), data, tmp_path / "a")
    b = Trainer(_config(epochs=1), data, tmp_path / "b")
    a.fit(log=lambda _: None)
    b.fit(log=lambda _: None)
    assert np.array_equal(a.embed(data.breed.features), b.embed(data.breed.features))
