"""The photo with each dog's box and skeleton drawn, as PNG bytes."""
from __future__ import annotations

import io

from PIL import Image, ImageDraw

from dogsearch.models.pose import keypoints as K

_LEFT, _RIGHT, _MIDDLE, _BOX = (230, 60, 60), (50, 110, 235), (40, 200, 90), (255, 200, 0)


def _colour(a: str, b: str = "") -> tuple[int, int, int]:
    names = a + b
    if "left" in names:
        return _LEFT
    if "right" in names:
        return _RIGHT
    return _MIDDLE


def render_png(image: Image.Image, dogs: list[dict], threshold: float = 0.3) -> bytes:
    """`dogs` as in the API's answer: box, keypoints [{name, x, y, score}]."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    unit = max(1, round(max(canvas.size) / 250))  # line width that stays visible on large photos
    for dog in dogs:
        x1, y1, x2, y2 = dog["box"]
        draw.rectangle([x1, y1, x2, y2], outline=_BOX, width=unit)
        if not dog.get("given") and not dog.get("whole_photo"):  # a box given, or none found: no confidence to show
            draw.text((x1 + 2 * unit, y1 + unit), f"{dog['score']:.2f}", fill=_BOX)
        points = {kp["name"]: kp for kp in dog["keypoints"]}
        for a, b in K.SKELETON:
            pa, pb = points.get(a), points.get(b)
            if pa and pb and pa["score"] >= threshold and pb["score"] >= threshold:
                draw.line([(pa["x"], pa["y"]), (pb["x"], pb["y"])], fill=_colour(a, b), width=2 * unit)
        for kp in dog["keypoints"]:
            if kp["score"] >= threshold:
                r = 2 * unit
                draw.ellipse([kp["x"] - r, kp["y"] - r, kp["x"] + r, kp["y"] + r], fill=_colour(kp["name"]),
                             outline=(255, 255, 255))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()
