"""Per-photo time of the embedder's dog path (`POST /v1/embed/dogs?vectors=false`: the detector, the dog classifier,
no embedding) and how many images its dog classifier runs a photo (the detector's own verifier not counted). The
app runs in this process with the real detector and classifier; photos are posted one a request, the first as a
warm-up. Prints one JSON object. Compare two trees by running it from each (PYTHONPATH=<tree>), interleaved.

    python scripts/dog-path-timing.py [--data ../shared/data] [--photos 40] [--threads 2] [--seems false]

`--seems false` asks as search and indexing do: what a photo seems to show only where no dog is found.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from dogsearch.core.images import PHOTO_SUFFIXES  # noqa: E402
from dogsearch.eval.detect import sample, split_of  # noqa: E402
from dogsearch.models.dogclass import DogClassifier  # noqa: E402
from dogsearch.services.embedder.app import create_app  # noqa: E402
from dogsearch.services.embedder.settings import EmbedderSettings  # noqa: E402


class CountingClassifier(DogClassifier):
    images = 0

    def classify(self, images, **kwargs):
        CountingClassifier.images += len(images)
        return super().classify(images, **kwargs)


def held_out(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and split_of(p) == "held-out")


async def run(paths: list[Path], threads: int, seems: str = "true") -> dict:
    settings = EmbedderSettings(model="efficientnet_lite0", preload=True, torch_threads=threads, replicas=1)
    app = create_app(settings, classifier_factory=lambda: CountingClassifier(device=settings.device))
    times, dogs = [], 0
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e",
                                     timeout=120) as client:
            for i, path in enumerate(paths):
                if i == 1:
                    CountingClassifier.images = 0  # the warm-up photo loaded the models
                start = time.perf_counter()
                r = await client.post("/v1/embed/dogs", params={"vectors": "false", "seems": seems},
                                      files=[("images", (path.name, path.read_bytes()))])
                r.raise_for_status()
                if i:
                    times.append(1000 * (time.perf_counter() - start))
                    dogs += len(r.json()["photos"][0]["dogs"])
    n = len(times)
    return {"tree": str(ROOT), "seems": seems, "photos": n, "ms_per_photo_median": round(statistics.median(times), 1),
            "ms_per_photo_mean": round(statistics.fmean(times), 1), "dogs": dogs,
            "classifier_images_per_photo": round(CountingClassifier.images / n, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--photos", type=int, default=40, help="held-out photos: half dogs, half without a dog")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seems", choices=["true", "false"], default="true")
    args = parser.parse_args()
    half = args.photos // 2
    paths = sample(held_out(args.data / "imagewoof"), half) + sample(held_out(args.data / "not-dogs"), half)
    print(json.dumps(asyncio.run(run(paths, args.threads, args.seems))))


if __name__ == "__main__":
    main()
