"""Views made on the training device from photos decoded once (augment.device_views): the same kinds of views as the
PIL recipe, from the photo alone (never its padding), seeded, normalised as the model wants."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dogsearch.training.embedder.augment import crop_boxes, device_views, fit_square

PLAIN = dict(jitter=0.0, grey_p=0.0, blur_p=0.0)


def batch(image: Image.Image, n: int, side: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    square, size = fit_square(image, side)
    return square.expand(n, -1, -1, -1).contiguous(), torch.tensor([size] * n)


def test_a_photo_fits_the_square_its_edge_repeated_beyond_it():
    photo = Image.new("RGB", (200, 100), (200, 30, 30))
    photo.paste((10, 10, 240), (0, 90, 200, 100))  # a blue last row
    square, size = fit_square(photo, 64)
    assert size == (64, 32) and square.shape == (3, 64, 64) and square.dtype == torch.uint8
    assert square[:, 5, 5].tolist() == [200, 30, 30]
    assert square[:, 50, 5].tolist() == square[:, 31, 5].tolist()  # below the photo: its last row, blue
    assert square[2, 50, 5] > 200


def test_crops_stay_inside_each_photo_and_cover_min_scale_or_more():
    sizes = torch.tensor([[64, 32], [20, 64], [64, 64]]).repeat(200, 1)
    boxes = crop_boxes(sizes, 0.3, torch.Generator().manual_seed(0))
    w, h = sizes[:, 0].float(), sizes[:, 1].float()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w + 1e-4).all() and (boxes[:, 3] <= h + 1e-4).all()
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (w * h)
    assert area.max() <= 1 + 1e-4 and np.quantile(area.numpy(), 0.5) > 0.3  # clipped to a thin photo: smaller


def test_views_are_of_the_photo_alone_mirrored_half_the_time_and_seeded():
    # red on the left, blue on the right, a wide photo in a square: a view is red and blue, never the padding's black
    photo = Image.new("RGB", (200, 100), (220, 20, 20))
    photo.paste((20, 20, 220), (100, 0, 200, 100))
    images, sizes = batch(photo, 64)
    views = device_views(images, sizes, 32, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(1),
                         min_scale=0.9, **PLAIN)
    assert views.shape == (64, 3, 32, 32)
    assert (views.sum(dim=1) > 0.9).all()  # no dark pixel: nothing from beyond the photo
    red_left = (views[:, 0, :, :4].mean(dim=(1, 2)) > views[:, 2, :, :4].mean(dim=(1, 2)))
    assert 10 < int(red_left.sum()) < 54  # mirrored about half the time
    again = device_views(images, sizes, 32, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(1),
                         min_scale=0.9, **PLAIN)
    other = device_views(images, sizes, 32, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(2),
                         min_scale=0.9, **PLAIN)
    assert torch.equal(views, again) and not torch.equal(views, other)


def test_colour_greyscale_and_blur_change_views_and_the_model_normalisation_is_applied():
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    images, sizes = batch(grey, 8)
    plain = device_views(images, sizes, 16, (128 / 255,) * 3, (0.25,) * 3,
                         generator=torch.Generator().manual_seed(0), **PLAIN)
    assert plain.abs().max() < 1e-5
    colourful = Image.new("RGB", (64, 64), (200, 120, 40))
    colourful.paste((30, 90, 200), (0, 0, 32, 64))
    images, sizes = batch(colourful, 64)
    views = device_views(images, sizes, 16, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(0),
                         min_scale=1.0, jitter=0.4, grey_p=0.5, blur_p=0.0)
    greys = (views.std(dim=1) < 1e-5).all(dim=(1, 2))
    assert 15 < int(greys.sum()) < 50  # about half of them greyscale
    brightness = views[~greys].mean(dim=(1, 2, 3))
    assert brightness.std() > 0.02  # jittered, each its own way
    sharp = device_views(images, sizes, 16, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(0),
                         min_scale=1.0, **PLAIN)
    blurred = device_views(images, sizes, 16, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(0),
                           min_scale=1.0, jitter=0.0, grey_p=0.0, blur_p=1.0)
    edge = lambda v: (v[..., 1:] - v[..., :-1]).abs().amax(dim=(1, 2, 3))  # noqa: E731
    assert (edge(blurred) < edge(sharp)).float().mean() > 0.9  # the colour edge softened


@pytest.mark.parametrize("side", [32, 48])
def test_photos_of_any_shape_give_views_of_the_asked_size(side):
    for size in ((10, 40), (40, 10), (7, 7)):
        images, sizes = batch(Image.new("RGB", size, (90, 160, 60)), 3, side)
        views = device_views(images, sizes, 24, (0.0,) * 3, (1.0,) * 3, generator=torch.Generator().manual_seed(0))
        assert views.shape == (3, 3, 24, 24) and torch.isfinite(views).all()
