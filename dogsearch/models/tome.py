"""Token merging (ToMe: Bolya et al., "Token Merging: Your ViT but Faster", ICLR 2023) for a timm ViT, training
free: in each block, after attention, the ``r`` most similar pairs of tokens (cosine of their keys, averaged over
the heads) are merged by bipartite soft matching into their size-weighted mean, and later blocks' attention counts a
merged token as the tokens it stands for (proportional attention: log size added to its attention logits). The
prefix tokens (the class token) are never merged, so a ViT that pools its class token keeps its output's shape.

``with_token_merging(vit, r)`` is a copy of the ViT that merges ``r`` tokens a block; it traces to ONNX at a fixed
input size (the token counts are fixed by it), so it runs on onnxruntime like the ViT (issue 20;
docs/embedder-eval.md, "Token merging").
"""
from __future__ import annotations

import copy

import torch
from timm.layers import Attention
from torch import nn


class MergingBlocks(nn.Sequential):
    """A ViT's blocks (the same modules and parameter names) run with ``r`` tokens merged after each one's
    attention. A block that merges nothing while no token has been merged yet runs as timm runs it."""

    def __init__(self, blocks: nn.Sequential, r: int, prefix: int) -> None:
        super().__init__(*blocks)
        self.r, self.prefix = r, prefix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = None  # each token's count of patches, (B, N, 1); None while every token is one patch
        for block in self:
            r = min(self.r, (x.shape[1] - self.prefix) // 2)
            if r <= 0 and size is None:
                x = block(x)
                continue
            attended, keys = _attend(block.attn, block.norm1(x), size)
            x = x + block.drop_path1(block.ls1(attended))
            if r > 0:
                x, size = merge(x, keys, size, r, self.prefix)
            x = x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))
        return x


def with_token_merging(module: nn.Module, r: int) -> nn.Module:
    """A copy of timm VisionTransformer ``module`` that merges ``r`` tokens in each block (r = 0: its own output).
    The ViT must pool its class token: a mean over merged tokens would need their sizes."""
    if r < 0 or not isinstance(getattr(module, "blocks", None), nn.Sequential):
        raise ValueError(f"token merging needs a timm ViT and r >= 0, not {type(module).__name__} and r={r}")
    if any(type(block.attn) is not Attention or getattr(block.attn, "gate", None) is not None
           for block in module.blocks):
        raise ValueError("token merging needs timm's own Attention, ungated, in every block")
    if module.global_pool != "token" or module.attn_pool is not None:
        raise ValueError(f"token merging needs a ViT that pools its class token, not {module.global_pool!r}")
    out = copy.deepcopy(module)
    out.blocks = MergingBlocks(out.blocks, r, out.num_prefix_tokens)
    return out.eval()


def _attend(attn: nn.Module, x: torch.Tensor, size: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """timm ``Attention``'s forward with proportional attention; also returns its keys averaged over the heads,
    the similarity that merging uses."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    if size is not None:
        logits = logits + size.log()[:, None, None, :, 0]
    x = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, -1)
    return attn.proj(attn.norm(x)), k.mean(dim=1)


def merge(x: torch.Tensor, keys: torch.Tensor, size: torch.Tensor | None, r: int,
          prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bipartite soft matching: the tokens after the ``prefix`` ones are split alternately into A and B; each of
    A's is paired with its most similar of B's, and the ``r`` pairs most alike merge into their B token, a mean
    weighted by size. Returns the ``N - r`` tokens (the prefix first, then A's unmerged, then B's) and their sizes."""
    if size is None:
        size = x.new_ones(x.shape[0], x.shape[1], 1)
    keys = keys[:, prefix:]
    keys = keys / keys.norm(dim=-1, keepdim=True)
    score, partner = (keys[:, ::2] @ keys[:, 1::2].transpose(-2, -1)).max(dim=-1)
    order = score.argsort(dim=-1, descending=True)[..., None]
    kept, merged = order[:, r:], order[:, :r]
    into = partner[..., None].gather(1, merged)

    def pool(t: torch.Tensor) -> torch.Tensor:  # sums: the means are taken once the sizes are summed too
        a, b = t[:, prefix::2], t[:, prefix + 1::2]
        width = t.shape[-1]
        moved = a.gather(1, merged.expand(-1, -1, width))
        b = b.scatter_add(1, into.expand(-1, -1, width), moved)
        return torch.cat([t[:, :prefix], a.gather(1, kept.expand(-1, -1, width)), b], dim=1)

    size_out = pool(size)
    return pool(x * size) / size_out, size_out
