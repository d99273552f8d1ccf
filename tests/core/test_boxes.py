import pytest
from PIL import Image

from dogsearch.core.boxes import BadBox, clip_marked, crop, expand, iou, parse_box


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


def test_a_marked_box_is_four_numbers_corner_then_corner():
    assert parse_box("10,20.5,30,40") == (10.0, 20.5, 30.0, 40.0)
    assert parse_box(" 1, 2 ,3,4") == (1.0, 2.0, 3.0, 4.0)
    for text in ("1,2,3", "1,2,3,4,5", "a,b,c,d", "", "nan,0,10,10", "0,0,inf,10", "1e999,0,2,2"):
        with pytest.raises(BadBox, match="four numbers"):
            parse_box(text)
    for text in ("30,0,10,10", "0,10,10,10"):
        with pytest.raises(BadBox, match="x0 < x1 and y0 < y1"):
            parse_box(text)


def test_a_marked_box_is_clipped_to_the_photo_and_must_keep_enough_of_it():
    assert clip_marked((-5, -5, 30.04, 40), 100, 80) == (0.0, 0.0, 30.0, 40.0)
    assert clip_marked((50, 20, 110, 88), 100, 80) == (50.0, 20.0, 100.0, 80.0)  # a drag a little past the edges
    for box in ((90, 0, 200, 50), (200, 200, 300, 300), (0, 0, 15, 80)):  # a sliver inside, outside, too narrow
        with pytest.raises(BadBox, match="under 16x16 pixels of the 100x80 photo"):
            clip_marked(box, 100, 80)
    # mostly outside: marked in other coordinates; clipped, it was the whole photo
    for box in ((0, 0, 99999, 99999), (-500, -500, 99999, 99999), (50, 20, 500, 500), (-11, 0, 50, 50)):
        with pytest.raises(BadBox, match="reaches past the 100x80 photo: mark the dog inside it, x 0..100"):
            clip_marked(box, 100, 80)


def test_a_sliver_is_widened_to_the_most_a_crop_may_be_long_and_thin():
    """A model resizes a crop by its short side: a 2 x 900 detector box would become 224 x 100,800 pixels."""
    assert expand((10, 10, 12, 900), 0, 1000, 1000) == (0, 10, 45, 900)  # 890 / 20 = 44.5: 45 wide, from the edge
    assert expand((500, 0, 501, 1000), 0, 1000, 1000) == (475, 0, 525, 1000)  # about its middle
    assert expand((0, 997, 1000, 1000), 0, 1000, 1000) == (0, 950, 1000, 1000)  # inside the photo
    assert expand((10, 10, 200, 300), 0, 1000, 1000) == (10, 10, 200, 300)  # a dog's box is as it was


def test_a_marked_box_may_not_be_a_sliver():
    with pytest.raises(BadBox, match="too long and thin"):
        clip_marked((0, 0, 4000, 20), 4000, 3000)
    assert clip_marked((0, 0, 400, 20), 4000, 3000) == (0, 0, 400, 20)
