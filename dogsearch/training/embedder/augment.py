"""SimCLR augmentations: two differently augmented views of one photo.

``image_augment`` works on PIL images (random resized crop, flip, colour jitter, greyscale, blur, then
the model's own normalisation). ``feature_views`` is the cheap stand-in used on cached features when a
backbone forward per augmented view is too slow (CPU): feature dropout plus Gaussian noise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import transforms as T


def image_augment(size: int, mean, std, *, min_scale: float = 0.2, jitter: float = 0.4,
                  grey_p: float = 0.2, blur_p: float = 0.5) -> T.Compose:
    return T.Compose([
        T.RandomResizedCrop(size, scale=(min_scale, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(jitter, jitter, jitter, jitter / 4)], p=0.8),
        T.RandomGrayscale(p=grey_p),
        T.RandomApply([T.GaussianBlur(kernel_size=max(3, size // 10) | 1, sigma=(0.1, 2.0))], p=blur_p),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


class TwoViews:
    """Apply ``transform`` twice: the positive pair of SimCLR."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, image):
        return self.transform(image), self.transform(image)


def feature_views(x: torch.Tensor, *, drop: float = 0.2, noise: float = 0.02,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two noisy copies of L2-normalised features (dropout mask + Gaussian noise, renormalised)."""
    def view() -> torch.Tensor:
        keep = (torch.rand(x.shape, generator=generator, device=x.device) >= drop).to(x.dtype)
        jitter = torch.randn(x.shape, generator=generator, device=x.device) * noise / x.shape[1] ** 0.5
        return F.normalize(x * keep + jitter, dim=1)
    return view(), view()


# milder than the end-to-end recipe's, for the CPU scripts that tune the default further (vit-top-blocks.py,
# vit-student.py): a dog's coat colour is part of who it is; the crop keeps more of a face than of a body
DOMAIN_AUGMENT = {"breed": dict(min_scale=0.3, jitter=0.2, grey_p=0.05, blur_p=0.1),
                  "face": dict(min_scale=0.6, jitter=0.2, grey_p=0.05, blur_p=0.1),
                  "body": dict(min_scale=0.4, jitter=0.2, grey_p=0.05, blur_p=0.1)}
