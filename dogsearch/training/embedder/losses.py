"""Contrastive losses on L2-normalised embeddings (rows of ``z``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N views must pick its partner among the other 2N-1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def supcon(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out): every other sample of the anchor's label
    is a positive; anchors without positives are skipped."""
    z = F.normalize(z, dim=1)
    n = z.shape[0]
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positives.sum(1)
    has = n_pos > 0
    if not has.any():
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0)).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


def relational_distill(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """KL(teacher || student) between each row's softmax over similarities to the other samples:
    the student learns who the teacher thinks is near whom (works across different dimensions)."""
    s = F.normalize(student, dim=1)
    t = F.normalize(teacher, dim=1)
    n = s.shape[0]
    mask = torch.eye(n, dtype=torch.bool, device=s.device)
    s_logits = (s @ s.T / temperature).masked_fill(mask, -1e9)
    t_logits = (t @ t.T / temperature).masked_fill(mask, -1e9)
    return F.kl_div(F.log_softmax(s_logits, 1), F.log_softmax(t_logits, 1), log_target=True,
                    reduction="batchmean")
