"""`dogsearch search IMAGE [IMAGE ...]`: the dogs most like a photo (or several photos of one dog), as a table or the
gateway's JSON."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from dogsearch.cli.common import add_target, api_key, gateway


def add_parser(sub) -> None:
    search = sub.add_parser("search", help="find the dogs most like a photo")
    search.add_argument("image", type=Path, nargs="+",
                        help="a photo; several photos of one dog are searched together (the gateway's "
                             "MAX_QUERY_PHOTOS, 5 by default)")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--breed", help="only dogs of this breed")
    search.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    add_target(search)
    search.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.errors import DogsearchError
    from dogsearch.core.logs import configure_logging

    configure_logging("WARNING")
    try:
        photos = [path.read_bytes() for path in args.image]
    except OSError as exc:
        print(f"dogsearch search: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2

    async def ask():
        async with gateway(args.url, args.data_dir, key=api_key(args.api_key_file)) as client:
            return await client.search(photos, k=args.k, filter={"breed": args.breed} if args.breed else None)

    try:
        answer = asyncio.run(ask())
    except DogsearchError as exc:
        print(f"dogsearch search: {exc.reason}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2) if args.json else table(answer))
    return 0


def table(answer: dict) -> str:
    """Each result's rank, score, same-dog probability and verdict (blank where the vectors have no calibration),
    breed, name and id; then the answer's message ("No likely match: ...") and its time."""
    lines = [f"{'rank':>4}  {'score':>6}  {'same dog':>8}  {'verdict':<8}  {'breed':<24} {'name':<16} id"] \
        if answer["results"] else []
    for rank, hit in enumerate(answer["results"], 1):
        payload = hit["payload"]
        same = "" if hit.get("same_dog") is None else f"{hit['same_dog']:.2f}"
        lines.append(f"{rank:>4}  {hit['score']:6.3f}  {same:>8}  {hit.get('verdict') or '':<8}  "
                     f"{str(payload.get('breed', '-')):<24} {str(payload.get('name', '-')):<16} {hit['id']}")
    if answer.get("message"):
        lines.append(answer["message"])
    lines.append(f"({answer['took_ms']:.0f} ms)")
    return "\n".join(lines)
