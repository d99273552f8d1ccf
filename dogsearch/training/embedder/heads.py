"""Heads: the served embedding head (dogsearch/models/heads.py) and SimCLR's projection head."""
from __future__ import annotations

from torch import nn

from dogsearch.models.heads import EmbeddingHead

__all__ = ["EmbeddingHead", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """SimCLR's MLP projection (Linear-BN-ReLU-Linear) to 128-d; used only by the training losses."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.net(x)
