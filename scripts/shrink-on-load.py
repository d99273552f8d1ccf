"""What decoding large JPEGs shrunk (dogsearch.core.images.decode_image's min_side) costs and saves: photos are
scaled up to each size, then decoded in full and shrunk the way the embedder does for the model's preprocessing.
Prints, per size, the milliseconds per photo both ways and the cosine between the vectors of the two decodes
(docs/operations.md).

    python scripts/shrink-on-load.py [--photos samples/gallery] [--megapixels 2 12] [-n 12]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "samples" / "gallery")
    parser.add_argument("--megapixels", type=float, nargs="+", default=[2.0, 12.0])
    parser.add_argument("-n", type=int, default=12, help="photos per size")
    args = parser.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from dogsearch.core.images import decode_image
    from dogsearch.services.embedder.settings import EmbedderSettings

    model = EmbedderSettings().build_model()
    limits = {"max_bytes": 1 << 30, "max_pixels": 1 << 30}
    sources = sorted(args.photos.rglob("*.jpg"))[: args.n]

    def ms(fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        return result, 1000 * (time.perf_counter() - start)

    def embedder(data: bytes, min_side: int | None) -> torch.Tensor:
        return model.preprocess(decode_image(data, **limits, min_side=min_side).image)

    report = []
    for mp in args.megapixels:
        times = np.zeros(2)
        cosines = []
        for path in sources:
            src = Image.open(path).convert("RGB")
            width = round((mp * 1e6 * src.width / src.height) ** 0.5)
            buf = io.BytesIO()
            src.resize((width, round(width * src.height / src.width)), Image.Resampling.BICUBIC).save(
                buf, "JPEG", quality=90)
            data = buf.getvalue()
            full, a = ms(embedder, data, None)
            shrunk, b = ms(embedder, data, model.decode_side)
            times += (a, b)
            va, vb = model.embed(torch.stack([full, shrunk]))
            cosines.append(float(va @ vb))
        t = times / len(sources)
        report.append({"megapixels": mp, "photos": len(sources),
                       "embedder_ms_full": round(t[0], 1), "embedder_ms_shrunk": round(t[1], 1),
                       "cosine_min": round(min(cosines), 5), "cosine_mean": round(float(np.mean(cosines)), 5)})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
