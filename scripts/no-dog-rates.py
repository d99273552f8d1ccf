"""How often the embedder's rule says "no dog found" on held-out photos (docs/detection.md): the detector's boxes,
else the dog classifier on the whole photo (DOGSEARCH_EMBEDDER_WHOLE_PHOTO_DOG). Photos are those of the detector's
held-out split (dogsearch.eval.detect.split_of). Prints one JSON object: per set, photos boxed, photos that are a
dog only whole, and photos answered "no dog found".

    python scripts/no-dog-rates.py [--data ../shared/data] [--detector lite0-centernet] [--whole-photo-dog 0.5]
        [--second-look]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from dogsearch.core.images import PHOTO_SUFFIXES  # noqa: E402
from dogsearch.eval.detect import split_of  # noqa: E402
from dogsearch.models.dogclass import DogClassifier  # noqa: E402
from dogsearch.models.registry import create_detector  # noqa: E402


def photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--detector", default="lite0-centernet")
    parser.add_argument("--whole-photo-dog", type=float, default=0.5)
    parser.add_argument("--second-look", action="store_true", help="as DOGSEARCH_EMBEDDER_SECOND_LOOK=true")
    args = parser.parse_args()
    detector, classifier = create_detector(args.detector, look_again=args.second_look), DogClassifier()
    found = {p.stem: p for p in photos(args.data / "imagewoof")} | {p.stem: p for p in photos(args.data / "dogpose")}
    labelled = [found[f.stem] for f in sorted((args.data / "dogpose" / "labels").glob("*.txt")) if f.stem in found]
    sets = {"dogs": labelled, "not-dogs": photos(args.data / "not-dogs"),
            "cats": photos(args.data / "oxford-pets" / "cats")}
    result = {}
    for name, paths in sets.items():
        held_out = [p for p in paths if split_of(p.name) == "held-out"]
        boxed = whole = 0
        for path in held_out:
            image = Image.open(path).convert("RGB")
            if detector.detect(image):
                boxed += 1
            elif classifier.classify([image])[0].dog >= args.whole_photo_dog:
                whole += 1
        result[name] = {"photos": len(held_out), "boxed": boxed, "whole_photo_dog": whole,
                        "no_dog_found": len(held_out) - boxed - whole}
        print(name, result[name], file=sys.stderr)
    print(json.dumps({"detector": args.detector, "whole_photo_dog": args.whole_photo_dog,
                      "second_look": args.second_look, "sets": result}))


if __name__ == "__main__":
    main()
