"""CPU ms a photo of the embedder's dog detector (its runtime and precision from the DOGSEARCH_EMBEDDER_* settings,
or --runtime) detecting photos one at a time against batches of 8 (`detect_many`, as the embedder's batcher runs it
on a CPU), on small variations of the sample photos; best of --rounds. Prints JSON.

    python scripts/detector-batching.py [--runtime openvino|onnxruntime|torch] [--rounds 3]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from dogsearch.bench.common import variations  # noqa: E402
from dogsearch.services.embedder.settings import EmbedderSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", choices=["openvino", "onnxruntime", "torch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    settings = EmbedderSettings(**({"runtime": args.runtime} if args.runtime else {}))
    detector = settings.build_detector()
    photos = [Image.open(io.BytesIO(data)).convert("RGB") for data, _ in variations(64, seed=1)]
    detector.detect_many(photos[: args.batch])  # warm-up: both networks built and run once
    one, batched = [], []
    for _ in range(args.rounds):
        start = time.process_time()
        for photo in photos:
            detector.detect(photo)
        one.append(time.process_time() - start)
        start = time.process_time()
        for i in range(0, len(photos), args.batch):
            detector.detect_many(photos[i:i + args.batch])
        batched.append(time.process_time() - start)
    print(json.dumps({"runtime": settings.runtime, "precision": detector.precision, "threads": settings.torch_threads,
                      "photos": len(photos), "cpu_ms_a_photo_one_at_a_time": round(1000 * min(one) / len(photos), 1),
                      f"cpu_ms_a_photo_batches_of_{args.batch}": round(1000 * min(batched) / len(photos), 1)}))


if __name__ == "__main__":
    main()
