"""More dogs for the detector's compositions (docs/detection.md, "Every training photo, the choices cross-fitted";
tried 2026-12-05, not kept): dog-id-body's train-split dogs (tight whole-body crops in many poses, CC BY 4.0; the
crop is the dog's box) pasted into the photos without a dog, one composition each, on top of `data.training_set`'s;
then `dogsearch train detector` with the arguments given, e.g. the out-of-fold run:

    python scripts/detector-extra-dogs.py train detector --cache-dir /tmp/detector-cache --quality --box-loss giou \\
        --spread 1 --seed 0 1 2 --threads 2 --folds 5 --flip off --out /tmp/det/cv5-extra \\
        --dump-out-of-fold /tmp/det/oof-extra.json
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from dogsearch.cli import main as cli_main  # noqa: E402
from dogsearch.eval.splits import identity_split  # noqa: E402
from dogsearch.training.detector import data as T  # noqa: E402

BODIES = Path("../shared/data/dog-id-body")


def bodies() -> list[tuple[Image.Image, tuple[float, float, float, float]]]:
    out = []
    for dog in sorted(p for p in BODIES.iterdir() if p.is_dir() and identity_split(p.name) == "train"):
        for path in sorted(dog.glob("*.jpg")):
            image = Image.open(path).convert("RGB")
            out.append((image, (0.0, 0.0, float(image.width), float(image.height))))
    return out


def with_bodies(extra: list, base=T.training_set):
    def training_set(dogs, negatives, *, seed: int = 0, **options):
        out = base(dogs, negatives, seed=seed, **options)
        if negatives:
            rng = random.Random(1000 + seed)
            for image, box in extra:
                patch = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image
                out.append(T.paste(rng.choice(negatives), [(patch, box)], rng))
        return out
    return training_set


if __name__ == "__main__":
    extra = bodies()
    print(f"{len(extra)} more dogs", file=sys.stderr)
    T.training_set = with_bodies(extra)
    sys.exit(cli_main(sys.argv[1:]))
