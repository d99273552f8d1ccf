"""The mirror image as a second look for the embedder (docs/embedder-eval.md, "Flip test-time augmentation"; tried
2026-12-05, not shipped): each photo embedded as it is and mirrored, the two vectors summed and normalised, against
the photo alone and the mirror alone, leave-one-out on the held-out sets, with the embedder as served (its settings:
OpenVINO bf16 on a CPU by default). Vectors are cached in --cache-dir. Prints JSON.

    python scripts/embedder-flip-tta.py [--model NAME] [--data ../shared/data]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from dogsearch.eval.retrieval import dir_vectors, load_model, retrieval_metrics  # noqa: E402


class Mirrored:
    """The model on the mirror image of every photo (after its own preprocess)."""

    def __init__(self, model) -> None:
        self.model, self.model_id, self.dim = model, f"{model.model_id}@mirrored", model.dim

    def preprocess(self, image):
        return self.model.preprocess(image)

    def embed(self, batch):
        return self.model.embed(batch.flip(-1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="the embedder model (default: the embedder setting)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/flip-tta-cache"))
    args = parser.parse_args()
    model = load_model(args.model, None)
    sets = [("imagewoof dev (breeds)", args.data / "imagewoof/dev", "breed", "all"),
            ("oxford dogs (other breeds)", args.data / "oxford-pets/dogs", "breed", "all"),
            ("dogfacenet held-out (faces)", args.data / "dogfacenet", "identity", "heldout"),
            ("dog-id-body held-out (whole dogs)", args.data / "dog-id-body", "identity", "heldout")]
    report = {"model": model.model_id}
    for name, root, kind, split in sets:
        items, plain, _ = dir_vectors(model, root, kind, split=split, progress=False, cache_dir=args.cache_dir)
        _, mirrored, _ = dir_vectors(Mirrored(model), root, kind, split=split, progress=False,
                                     cache_dir=args.cache_dir)
        both = plain + mirrored
        both /= np.linalg.norm(both, axis=1, keepdims=True)
        labels = [label for _, label in items]
        report[name] = {view: {k: round(v, 4) for k, v in retrieval_metrics(vectors, labels).items()}
                        for view, vectors in (("photo", plain), ("mirror", mirrored), ("both", both))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
