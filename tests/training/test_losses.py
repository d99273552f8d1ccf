"""The contrastive losses, heads and augmentations against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from dogsearch.training.embedder.augment import TwoViews, feature_views, image_augment
from dogsearch.training.embedder.heads import EmbeddingHead, ProjectionHead
from dogsearch.training.embedder.losses import nt_xent, relational_distill, supcon


def test_nt_xent_matches_the_hand_computed_value():
    # views a, b and a', b' with a = a' = [1, 0], b = b' = [0, 1]: each row sees its partner at
    # cosine 1 and the two others at 0, so every row's loss is -log(e^(1/t) / (e^(1/t) + 2))
    t = 0.5
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = nt_xent(z1, z1.clone(), temperature=t)
    assert float(loss) == pytest.approx(math.log(1 + 2 * math.exp(-1 / t)), rel=1e-6)


def test_nt_xent_is_low_for_matching_views_and_high_for_swapped_ones():
    z = torch.nn.functional.normalize(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    assert nt_xent(z, z) < nt_xent(z, z.roll(1, 0))


def test_supcon_matches_the_hand_computed_value():
    # anchors 0 and 1 share a label (cosine 1), anchor 2 (cosine 0 to both) has no positive: skipped.
    # anchor 0: -log(e^1 / (e^1 + e^0)) = log(1 + e^-1); the same for anchor 1
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = supcon(z, torch.tensor([0, 0, 1]), temperature=1.0)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_supcon_without_any_positive_is_zero_and_differentiable():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supcon(z, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss.detach()) == 0.0


def test_relational_distill_is_zero_for_the_teacher_itself_and_dimension_free():
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(6, 32, generator=gen)
    assert float(relational_distill(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(relational_distill(torch.randn(6, 8, generator=gen), t)) > 0.01


def test_heads_shapes():
    head = EmbeddingHead(1280, 64, 512)
    proj = ProjectionHead(512, 32, 128)
    e = head(torch.randn(5, 1280))
    assert e.shape == (5, 512) and proj(e).shape == (5, 128)


def test_embedding_head_starts_as_a_linear_map_of_its_input():
    head = EmbeddingHead(16, 8, 16)
    x = torch.randn(3, 16)
    assert torch.allclose(head(x), head.out(x))  # the residual branch is zero at start


def test_two_views_differ_and_keep_the_shape():
    torch.manual_seed(0)
    im = Image.linear_gradient("L").convert("RGB").resize((96, 80))
    a, b = TwoViews(image_augment(64, (0.5,) * 3, (0.5,) * 3))(im)
    assert a.shape == b.shape == (3, 64, 64)
    assert not torch.allclose(a, b)


def test_feature_views_differ_and_stay_unit_length():
    x = torch.nn.functional.normalize(torch.randn(4, 32), dim=1)
    a, b = feature_views(x, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)
    assert torch.allclose(a.norm(dim=1), torch.ones(4), atol=1e-5)
