"""Can a photo's two boxes be told to be one dog boxed twice (head and body) rather than two dogs, from what the
gallery stores? For every photo of a gallery with several entries: each pair's IoU, the share of the smaller box
inside the other, and the cosine of their vectors (whole, and the ViT part alone), with the pairs looked at by eye
named below as one dog boxed twice (docs/detection.md, "One dog boxed twice, or two dogs?").

    dogsearch index ../shared/data/imagewoof/dev --local --data-dir /tmp/gal
    python scripts/photo-box-pairs.py /tmp/gal ../shared/data/imagewoof/dev [--tiles /tmp/pairs]

--tiles writes the photos with their boxes drawn and numbered, 12 a sheet, to label them again."""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dogsearch.core.boxes import area, iou
from dogsearch.services.layout import DataLayout
from dogsearch.services.search.app import create_app
from dogsearch.services.search.client import SearchClient
from dogsearch.services.search.settings import SearchSettings

# Imagewoof dev photos whose two boxes are one dog, looked at one by one (every other photo with two or more boxes
# shows two or more dogs: littermates side by side, a pack, a dog and its picture on a poster)
ONE_DOG_TWICE = {"ILSVRC2012_val_00000832.jpg", "n02086240_10542.jpg", "ILSVRC2012_val_00038550.jpg",
                 "n02099601_10122.jpg", "n02093754_1451.jpg", "n02105641_10741.jpg"}
VIT_DIM = 384  # the fused vector's first part: the ViT's


async def entries(data_dir: Path) -> list[dict]:
    app = create_app(SearchSettings(data_dir=DataLayout(data_dir).vectors))
    async with app.router.lifespan_context(app):
        client = SearchClient("http://search", app=app, timeout=120)
        points, offset = [], None
        while True:
            page = await client.scroll(256, offset, None)
            points += (await client.lookup([p["id"] for p in page["points"]], with_vector=True)).values()
            offset = page["next"]
            if offset is None:
                break
        await client.aclose()
    return points


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def pair_row(a: dict, b: dict) -> dict:
    ba, bb = a["payload"]["box"], b["payload"]["box"]
    inter = area((max(ba[0], bb[0]), max(ba[1], bb[1]), min(ba[2], bb[2]), min(ba[3], bb[3])))
    va, vb = np.asarray(a["vector"]), np.asarray(b["vector"])
    return {"iou": iou(ba, bb), "inside": inter / min(area(ba), area(bb)), "cos": float(va @ vb),
            "cos_vit": float(unit(va[:VIT_DIM]) @ unit(vb[:VIT_DIM]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("photos", type=Path)
    parser.add_argument("--tiles", type=Path)
    args = parser.parse_args()
    files = {hashlib.sha256(f.read_bytes()).hexdigest(): f for f in args.photos.rglob("*") if f.is_file()}
    by_photo: dict[str, list[dict]] = {}
    for point in asyncio.run(entries(args.data_dir)):
        if point["payload"]["sha256"] in files:
            by_photo.setdefault(point["payload"]["sha256"], []).append(point)
    several = [(files[sha], points) for sha, points in sorted(by_photo.items()) if len(points) > 1]
    rows = [{"photo": f.name, "one_dog": f.name in ONE_DOG_TWICE} | pair_row(a, b)
            for f, points in several for a, b in itertools.combinations(points, 2)]
    print(f"{len(by_photo)} photos, {len(several)} with several boxes, {len(rows)} pairs, "
          f"{sum(r['one_dog'] for r in rows)} of them one dog boxed twice")
    for key in ("iou", "inside", "cos", "cos_vit"):  # a rule "merge at or above t", t at each one-dog pair's value
        one = sorted((r[key] for r in rows if r["one_dog"]), reverse=True)
        two = [r[key] for r in rows if not r["one_dog"]]
        print(f"{key:8} " + ", ".join(f"{t:.3f}: {n} | {sum(v >= t for v in two)}" for n, t in enumerate(one, 1)))
    print("(merge at or above t: one-dog pairs merged | two-dog pairs merged, of "
          f"{sum(r['one_dog'] for r in rows)} | {sum(not r['one_dog'] for r in rows)})")
    if args.tiles:
        write_tiles(several, args.tiles)


def write_tiles(several: list[tuple[Path, list[dict]]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    colours = ["red", "blue", "yellow", "lime", "cyan"]
    tiles = []
    for n, (f, points) in enumerate(several):
        image = Image.open(f).convert("RGB")
        draw = ImageDraw.Draw(image)
        for i, point in enumerate(points):
            box = point["payload"]["box"]
            draw.rectangle(box, outline=colours[i % len(colours)], width=2)
            draw.text((box[0] + 3, box[1] + 3), str(i), fill=colours[i % len(colours)])
        draw.text((2, 2), f"{n} {f.name}", fill="white")
        image.thumbnail((256, 196))
        tiles.append(image)
    for start in range(0, len(tiles), 12):
        sheet = Image.new("RGB", (4 * 260, 3 * 200))
        for i, tile in enumerate(tiles[start:start + 12]):
            sheet.paste(tile, ((i % 4) * 260, (i // 4) * 200))
        sheet.save(out / f"pairs-{start // 12}.png")


if __name__ == "__main__":
    main()
