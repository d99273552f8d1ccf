"""End-to-end fine-tuning through LoRA on tiny photo folders with a tiny ViT: it trains, validates as the service
embeds, keeps the best epoch, and a run resumed from its checkpoint ends where an uninterrupted one does."""
from __future__ import annotations

import random

import pytest
import torch
from PIL import Image
from timm.models.vision_transformer import VisionTransformer

from dogsearch.models import lora as L
from dogsearch.training.embedder.config import FinetuneConfig
from dogsearch.training.embedder.finetune import Finetuner, labelled


def tiny_vit(seed: int) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(img_size=224, patch_size=14, embed_dim=16, depth=1, num_heads=2, num_classes=0,
                             init_values=1e-5).eval()


def _photos(root, labels, per, seed):
    rng = random.Random(seed)
    for i, label in enumerate(labels):
        (root / label).mkdir(parents=True)
        base = (30 + 60 * (i % 4), 200 - 50 * (i % 3), 40 + 35 * (i % 5))
        for j in range(per):
            colour = tuple(max(0, min(255, c + rng.randint(-30, 30))) for c in base)
            Image.new("RGB", (24, 20), colour).save(root / label / f"{label}_{j}.png")


def _tuner(tmp_path, config, out):
    breed_dir, dog_dir = tmp_path / "breeds", tmp_path / "dogs"
    if not breed_dir.exists():
        _photos(breed_dir, ["b0", "b1", "b2"], 30, 0)
        _photos(dog_dir, [f"dog{i}" for i in range(40)], 2, 1)
    sets = {name: labelled(root, kind, split)[0] for name, (root, kind, split) in {
        "breed": (breed_dir, "breed", "train"), "breed_val": (breed_dir, "breed", "val"),
        "identity": (dog_dir, "identity", "train"), "identity_val": (dog_dir, "identity", "val")}.items()}
    return Finetuner(config, student=tiny_vit(0), teacher=tiny_vit(1), teacher_norm=((0.5,) * 3, (0.5,) * 3),
                     device="cpu", out_dir=out, workers=0, **sets)


def test_finetune_trains_validates_and_resumes_exactly(tmp_path):
    config = FinetuneConfig(epochs=2, breed_batch=8, ident_p=2, ident_k=2, rank=2, alpha=4.0)
    straight = _tuner(tmp_path, config, tmp_path / "a")
    straight.fit(log=lambda _: None)
    assert [r["epoch"] for r in straight.history] == [1, 2]
    assert {"val_breed_recall@1", "val_identity_recall@1", "val_score", "breed_distill"} <= set(straight.history[0])
    assert straight.best_epoch in (1, 2)
    delta = straight.delta()
    assert any(k.endswith("lora_b") and v.abs().sum() > 0 for k, v in delta.items())  # training moved it
    # what ships (the delta merged into a fresh base) is the network that was trained, LayerNorms included
    assert any(".norm" in k for k in delta)
    served = tiny_vit(0)
    L.merge_delta(served, delta, scale=config.alpha / config.rank)
    x = torch.randn(2, 3, 224, 224)
    straight.student.eval()
    with torch.no_grad():
        torch.testing.assert_close(served(x), straight.student(x), rtol=1e-4, atol=1e-5)

    interrupted = _tuner(tmp_path, config, tmp_path / "b")
    interrupted.fit(stop_after=1, log=lambda _: None)
    assert interrupted.epoch == 1
    resumed = _tuner(tmp_path, config, tmp_path / "b")
    messages = []
    resumed.fit(resume=True, log=messages.append)
    assert messages[0] == "resumed after epoch 1"
    assert resumed.epoch == 2
    for key, value in resumed.delta().items():
        torch.testing.assert_close(value, delta[key], msg=key)


def test_views_made_on_the_device_train_and_resume_exactly(tmp_path):
    """--augment device: the photos decoded once, each step's views made where the model runs; the same seeds give
    the same run, interrupted or not."""
    config = FinetuneConfig(epochs=2, breed_batch=8, ident_p=2, ident_k=2, rank=2, alpha=4.0, augment="device",
                            augment_side=32)
    straight = _tuner(tmp_path, config, tmp_path / "a")
    squares, sizes, labels = straight.decoded["breed"]
    assert squares.shape[1:] == (3, 32, 32) and squares.dtype == torch.uint8 and len(sizes) == len(labels)
    assert sizes.tolist()[0] == [32, 27]  # a 24 x 20 photo fits the square at 32 x 27
    straight.fit(log=lambda _: None)
    delta = straight.delta()
    assert any(k.endswith("lora_b") and v.abs().sum() > 0 for k, v in delta.items())
    interrupted = _tuner(tmp_path, config, tmp_path / "b")
    interrupted.fit(stop_after=1, log=lambda _: None)
    resumed = _tuner(tmp_path, config, tmp_path / "b")
    resumed.fit(resume=True, log=lambda _: None)
    for key, value in resumed.delta().items():
        torch.testing.assert_close(value, delta[key], msg=key)


def test_an_unknown_augment_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--augment is pil or device"):
        _tuner(tmp_path, FinetuneConfig(breed_batch=8, ident_p=2, ident_k=2, augment="gpu"), tmp_path / "c")
