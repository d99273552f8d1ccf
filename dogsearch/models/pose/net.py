"""The default pose network: EfficientNet-Lite0 trunk (registry weights) + a small FPN heatmap head.

Stride 4, 8, 16 and 32 features are merged top-down into 1/4-resolution heatmaps, one per keypoint
(17 AP-10K + tail tip). Only blocks 3-5 of the trunk and the head are trained; the stem and blocks 0-2 keep the
package's ImageNet weights, so the shipped files hold just the trained part.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dogsearch.models.pose import keypoints as K
from dogsearch.models.registry import build_backbone

TRAINED_BLOCKS = (3, 4, 5)
HEATMAP_STRIDE = 4


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class FpnHead(nn.Module):
    def __init__(self, channels=(24, 40, 112, 192), width: int = 96, out_width: int = 64,
                 num_keypoints: int = K.NUM_MODEL) -> None:
        super().__init__()
        c4, c8, c16, c32 = channels
        self.lat32 = nn.Conv2d(c32, width, 1)
        self.lat16 = nn.Conv2d(c16, width, 1)
        self.lat8 = nn.Conv2d(c8, width, 1)
        self.lat4 = nn.Conv2d(c4, out_width, 1)
        self.ctx16 = _conv_bn_relu(width, width)
        self.fuse8 = _conv_bn_relu(width, width)
        self.reduce = nn.Conv2d(width, out_width, 1)
        self.fuse4 = _conv_bn_relu(out_width, out_width)
        self.out = nn.Conv2d(out_width, num_keypoints, 1)

    def forward(self, f4, f8, f16, f32):
        p16 = self.ctx16(self.lat16(f16) + F.interpolate(self.lat32(f32), size=f16.shape[-2:], mode="nearest"))
        p8 = self.fuse8(self.lat8(f8) + F.interpolate(p16, size=f8.shape[-2:], mode="nearest"))
        p4 = self.reduce(F.interpolate(p8, size=f4.shape[-2:], mode="bilinear", align_corners=False))
        return self.out(self.fuse4(p4 + self.lat4(f4)))


class PoseNet(nn.Module):
    def __init__(self, num_keypoints: int = K.NUM_MODEL) -> None:
        super().__init__()
        base, _, _ = build_backbone("efficientnet_lite0", num_classes=0)  # checksum-verified package weights
        self.conv_stem, self.bn1 = base.conv_stem, base.bn1
        self.blocks = nn.ModuleList(base.blocks[:6])
        self.head = FpnHead(num_keypoints=num_keypoints)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        feats = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            feats[i] = x
        return self.head(feats[1], feats[2], feats[4], feats[5])

    def frozen_parameters(self):
        yield from self.conv_stem.parameters()
        yield from self.bn1.parameters()
        for i, block in enumerate(self.blocks):
            if i not in TRAINED_BLOCKS:
                yield from block.parameters()

    def trained_state(self) -> tuple[dict, dict]:
        """(trunk blocks 3-5, head) state dicts: the files that ship."""
        trunk = {f"blocks.{k}": v for k, v in self.blocks.state_dict().items()
                 if int(k.split(".", 1)[0]) in TRAINED_BLOCKS}
        return trunk, dict(self.head.state_dict())

    def load_trained_state(self, trunk: dict, head: dict) -> None:
        own = {f"blocks.{k}" for k, v in self.blocks.state_dict().items()
               if int(k.split(".", 1)[0]) in TRAINED_BLOCKS}
        if set(trunk) != own:
            missing, extra = sorted(own - set(trunk))[:3], sorted(set(trunk) - own)[:3]
            raise ValueError(f"trunk weights do not fit: missing {missing}, unexpected {extra}")
        self.blocks.load_state_dict({k[len("blocks."):]: v.float() for k, v in trunk.items()}, strict=False)
        self.head.load_state_dict({k: v.float() for k, v in head.items()}, strict=True)

    def set_trunk_train_mode(self) -> None:
        """Train mode for the head only: the trunk's batch-norm statistics stay the package's (small data)."""
        self.train()
        self.conv_stem.eval()
        self.bn1.eval()
        self.blocks.eval()


def to_input(images: list, mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """PIL crops (all the same size) -> NCHW float tensor scaled as the package weights expect."""
    import numpy as np

    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images]) / 255.0
    return torch.from_numpy((arr - mean) / std).permute(0, 3, 1, 2).contiguous()


def heatmap_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between each joint's spatial softmax and its Gaussian target (normalised to sum 1).

    It learns to place a peak in far fewer steps than heatmap MSE, which matters on a CPU budget.
    """
    n, j = logits.shape[:2]
    logp = F.log_softmax(logits.reshape(n, j, -1).float(), dim=2)
    t = target.reshape(n, j, -1)
    t = t / t.sum(dim=2, keepdim=True).clamp(min=1e-8)
    per_joint = -(t * logp).sum(dim=2)
    return (per_joint * weight).sum() / weight.sum().clamp(min=1)


def decode_heatmaps(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, J, H, W) logits -> (N, J, 2) input-pixel coordinates and (N, J) scores.

    The peak of each joint's spatial softmax, plus a quarter-pixel step towards the higher neighbour (as in
    SimpleBaseline); the score is the probability mass within 3 heatmap pixels of the peak: near 0.85 for a
    sharp, certain peak, low when the model spreads its bet.
    """
    n, j, h, w = logits.shape
    probs = F.softmax(logits.reshape(n, j, -1).float(), dim=2).reshape(n, j, h, w)
    mass = F.avg_pool2d(probs, kernel_size=7, stride=1, padding=3, count_include_pad=True) * 49
    flat = probs.reshape(n, j, -1)
    _, idx = flat.max(dim=2)
    ys = torch.div(idx, w, rounding_mode="floor")
    xs = idx % w
    scores = mass.reshape(n, j, -1).gather(2, idx.unsqueeze(-1)).squeeze(-1)
    xl = (xs - 1).clamp(0, w - 1)
    xr = (xs + 1).clamp(0, w - 1)
    yu = (ys - 1).clamp(0, h - 1)
    yd = (ys + 1).clamp(0, h - 1)

    def at(y, x):
        return flat.gather(2, (y * w + x).unsqueeze(-1)).squeeze(-1)

    dx = torch.sign(at(ys, xr) - at(ys, xl)) * 0.25
    dy = torch.sign(at(yd, xs) - at(yu, xs)) * 0.25
    coords = torch.stack([xs.float() + 0.5 + dx, ys.float() + 0.5 + dy], dim=-1) * HEATMAP_STRIDE
    return coords, scores.clamp(0.0, 1.0)
