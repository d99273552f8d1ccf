"""What decoding each photo costs, as the embedder decodes it (`decode_image` with its decode side): milliseconds,
the memory estimated from the header (what `MAX_DECODE_BYTES` is held against) and the peak memory measured (the
process's high-water mark, each photo in a fresh process), as JSON lines. For choosing `MAX_DECODE_BYTES` for the
photos a deployment gets, and for checking the estimate of a format (docs/operations.md, "Phone formats").

    python scripts/decode-cost.py PHOTO... [--side 768] [--repeat 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(path: Path, side: int, repeat: int) -> dict:
    import io
    import time

    from PIL import Image

    from dogsearch.core.images import _open, decode_cost, decode_image

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)):
        pass  # the format's plugin loaded before the baseline
    head = _open(data, 1 << 40, 1 << 40)
    if side and head.format in ("JPEG", "MPO"):
        head.draft(None, (side, side))
    estimate = decode_cost(head)
    Path("/proc/self/clear_refs").write_text("5")  # the high-water mark from here
    base = _status("VmRSS")
    times, peak = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        decoded = decode_image(data, max_bytes=1 << 40, max_pixels=1 << 40, min_side=side)
        times.append((time.perf_counter() - start) * 1000)
        if len(times) == 1:  # the first decode's peak: later ones add what the allocator kept of the first
            peak = _status("VmHWM") - base
    return {"photo": path.name, "format": decoded.format, "megapixels": round(decoded.width * decoded.height / 1e6, 1),
            "bytes": len(data), "decoded": list(decoded.image.size), "ms": round(min(times), 1),
            "estimated_mib": round(estimate / 2**20, 1), "peak_mib": round(peak / 2**20, 1)}


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", type=Path, nargs="+")
    parser.add_argument("--side", type=int, default=768, help="the decode side (the embedder's dogs: 768)")
    parser.add_argument("--repeat", type=int, default=3, help="decodes a photo; the fastest is reported")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # a child's photo
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(measure(args.one, args.side, args.repeat)))
        return
    for path in args.photos:  # each in its own process: its peak is its own
        out = subprocess.run([sys.executable, __file__, str(path), "--one", str(path), "--side", str(args.side),
                              "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
