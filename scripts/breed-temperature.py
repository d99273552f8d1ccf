"""The default fusion's breed part at other temperatures (docs/embedder-eval.md, "The breed part's temperature"): the
CNN's ImageNet logits divided by T before the softmax whose breed probabilities' square roots make the part (T < 1
sharper: breeds agree only on the likeliest; T > 1 softer: related breeds share more), the breed weight and the
re-ranking chosen again on the validation sets for each, as `dogsearch train fusion` chooses them.

    dogsearch train fusion --model-id vit_small_dinov2-lora-dogs-v3-lite0-breeds \\
        --base vit_small_dinov2-lora-dogs-v3 --cache-dir /tmp/fusion-cache --rerank-weights 0.75 --rerank-caps 0.4 \\
        --dry-run                                                     # the 224-px parts of every set (~7-15 min)
    python scripts/breed-temperature.py --parts /tmp/fusion-cache/vit_small_dinov2-lora-dogs-v3   # ~3 minutes
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("test_resolution", ROOT / "scripts" / "test-resolution.py")
RES = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RES)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=Path, required=True, help="`train fusion`'s cache folder of the base")
    parser.add_argument("--temperatures", default="0.5,0.75,1,1.5,2,3")
    args = parser.parse_args()
    base = RES.base_parts(args.parts)
    RES.print_chosen(base, {f"T {t}": {n: {"logits": base[n]["logits"] / float(t)} for n in base}
                            for t in args.temperatures.split(",")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
