"""SimCLR augmentations: two differently augmented views of one photo.

``image_augment`` works on PIL images (random resized crop, flip, colour jitter, greyscale, blur, then
the model's own normalisation); ``device_views`` does the same to a batch of photos decoded once (``fit_square``),
on the device the model trains on. ``feature_views`` is the cheap stand-in used on cached features when a
backbone forward per augmented view is too slow (CPU): feature dropout plus Gaussian noise.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
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


# -- on the training device: each photo decoded once, its views cropped and coloured in batches --------------------
# A GPU run of the PIL recipe above was bound by decoding and augmenting on the CPU (16 cores fed an H200 a fraction
# of what it could take): here each photo is decoded once, scaled to fit a square of `side` and kept as uint8; each
# step's views are the same augmentations (random resized crop, flip, colour jitter, greyscale, blur) done on the
# batch where the model runs.

def fit_square(image: Image.Image, side: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """The photo scaled so its longer side is `side`, at the top left of a `side` x `side` square: uint8 (3, side,
    side), and the photo's (width, height) in it. Views are cropped within the photo; the rest of the square repeats
    its last column and row, so that sampling at the photo's edge blends in no colour that is not there."""
    scale = side / max(image.width, image.height)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    pixels = torch.from_numpy(np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)).copy())
    square = F.pad(pixels.permute(2, 0, 1)[None].float(), (0, side - width, 0, side - height), mode="replicate")
    return square[0].to(torch.uint8), (width, height)


def _uniform(n: int, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def crop_boxes(sizes: torch.Tensor, min_scale: float, generator: torch.Generator,
               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """RandomResizedCrop's boxes (x0, y0, x1, y1), one a photo of (width, height) `sizes`: an area of min_scale..1 of
    the photo at an aspect ratio of 3/4..4/3, clipped to the photo, anywhere in it."""
    n, device = len(sizes), sizes.device
    w, h = sizes[:, 0].float(), sizes[:, 1].float()
    area = w * h * _uniform(n, min_scale, 1.0, generator, device)
    aspect = torch.exp(_uniform(n, float(np.log(ratio[0])), float(np.log(ratio[1])), generator, device))
    cw = torch.sqrt(area * aspect).clamp(min=1.0).minimum(w)
    ch = torch.sqrt(area / aspect).clamp(min=1.0).minimum(h)
    x0 = (w - cw) * torch.rand(n, generator=generator, device=device)
    y0 = (h - ch) * torch.rand(n, generator=generator, device=device)
    return torch.stack([x0, y0, x0 + cw, y0 + ch], dim=1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _blur(x: torch.Tensor, sigma: torch.Tensor, kernel: int) -> torch.Tensor:
    """Each image blurred by its own Gaussian (separable, reflect-padded)."""
    b, c, hgt, wid = x.shape
    offsets = torch.arange(kernel, device=x.device, dtype=x.dtype) - kernel // 2
    weights = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    weights = (weights / weights.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (b*c, kernel)
    flat = x.reshape(1, b * c, hgt, wid)
    pad = kernel // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), weights[:, None, None, :], groups=b * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), weights[:, None, :, None], groups=b * c)
    return flat.reshape(b, c, hgt, wid)


def device_views(images: torch.Tensor, sizes: torch.Tensor, out: int, mean, std, *, generator: torch.Generator,
                 min_scale: float = 0.2, jitter: float = 0.4, grey_p: float = 0.2, blur_p: float = 0.5) -> torch.Tensor:
    """One augmented view of each photo (uint8 (B, 3, S, S) from `fit_square`, on the device), as `image_augment`
    makes one from a PIL image: a random resized crop to `out` x `out` (bilinear), a mirror half the time, colour
    jitter 8 times in 10 (brightness, contrast, saturation by up to `jitter`, hue by up to jitter / 4 of a turn),
    greyscale and blur with their probabilities, then the model's normalisation. Float (B, 3, out, out)."""
    from torchvision.ops import roi_align

    device, n = images.device, len(images)
    boxes = crop_boxes(sizes.to(device), min_scale, generator)
    rois = torch.cat([torch.arange(n, device=device, dtype=boxes.dtype)[:, None], boxes], dim=1)
    x = roi_align(images.float() / 255.0, rois, output_size=(out, out), spatial_scale=1.0, sampling_ratio=2,
                  aligned=True)

    def chance(p: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator, device=device) < p).view(n, 1, 1, 1)

    x = torch.where(chance(0.5), x.flip(-1), x)
    if jitter > 0:
        jittered = x * _uniform(n, 1 - jitter, 1 + jitter, generator, device).view(n, 1, 1, 1)  # brightness
        grey_mean = _grey(jittered).mean(dim=(2, 3), keepdim=True)
        jittered = (jittered - grey_mean) * _uniform(n, 1 - jitter, 1 + jitter, generator, device).view(
            n, 1, 1, 1) + grey_mean  # contrast
        grey = _grey(jittered)
        jittered = (jittered - grey) * _uniform(n, 1 - jitter, 1 + jitter, generator, device).view(
            n, 1, 1, 1) + grey  # saturation
        jittered = _hue(jittered.clamp(0, 1), _uniform(n, -jitter / 4, jitter / 4, generator, device))
        x = torch.where(chance(0.8), jittered.clamp(0, 1), x)
    x = torch.where(chance(grey_p), _grey(x).expand_as(x), x)
    if blur_p > 0:  # only the views drawn for it are blurred: the widest filter here
        sigma = _uniform(n, 0.1, 2.0, generator, device)
        chosen = chance(blur_p).view(n).nonzero().view(-1)
        if len(chosen):
            x = x.index_copy(0, chosen, _blur(x[chosen], sigma[chosen], max(3, out // 10) | 1))
    mean_t = torch.tensor(mean, device=device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def _hue(x: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Hue rotated by `turns` of a full turn, each image its own: a rotation of the chroma plane in YIQ."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    angle = turns * 2 * np.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(len(x), 3, 3, device=x.device, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    matrix = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # (B, 3, 3)
    return torch.einsum("bij,bjhw->bihw", matrix, x)
