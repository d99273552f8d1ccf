import pytest
from PIL import Image

from dogsearch.core.boxes import crop, expand, iou


def test_expand_grows_by_the_box_share_and_stays_inside_the_photo():
    assert expand((10, 20, 30, 60), 0.1, 100, 100) == (8, 16, 32, 64)
    assert expand((0, 0, 100, 50), 0.5, 100, 50) == (0, 0, 100, 50)
    assert expand((10.4, 10.6, 20.2, 20.0), 0.0, 100, 100) == (10, 10, 21, 20)


def test_expand_refuses_a_box_outside_the_photo_and_a_negative_margin():
    with pytest.raises(ValueError, match="outside"):
        expand((120, 0, 140, 10), 0.1, 100, 100)
    with pytest.raises(ValueError, match="margin"):
        expand((0, 0, 10, 10), -0.1, 100, 100)


def test_crop_takes_the_pixels_around_the_box():
    im = Image.new("RGB", (100, 80), "white")
    im.paste((255, 0, 0), (40, 30, 60, 50))
    part = crop(im, (40, 30, 60, 50), margin=0.25)
    assert part.size == (30, 30)
    assert part.getpixel((15, 15)) == (255, 0, 0) and part.getpixel((1, 1)) == (255, 255, 255)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0
