"""`dogsearch search IMAGE`: the dogs most like a photo, as a table or the gateway's JSON."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from dogsearch.cli.common import add_target, api_key, gateway


def add_parser(sub) -> None:
    search = sub.add_parser("search", help="find the dogs most like a photo")
    search.add_argument("image", type=Path)
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--breed", help="only dogs of this breed")
    search.add_argument("--json", action="store_true", help="print the gateway's JSON answer")
    add_target(search)
    search.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.errors import DogsearchError
    from dogsearch.core.logs import configure_logging

    configure_logging("WARNING")
    data = args.image.read_bytes()

    async def ask():
        async with gateway(args.url, args.data_dir, key=api_key(args.api_key_file)) as client:
            return await client.search(data, k=args.k, filter={"breed": args.breed} if args.breed else None)

    try:
        answer = asyncio.run(ask())
    except DogsearchError as exc:
        print(f"dogsearch search: {exc.reason}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{'rank':>4}  {'score':>6}  {'breed':<24} {'name':<16} id")
    for rank, hit in enumerate(answer["results"], 1):
        payload = hit["payload"]
        print(f"{rank:>4}  {hit['score']:6.3f}  {str(payload.get('breed', '-')):<24} "
              f"{str(payload.get('name', '-')):<16} {hit['id']}")
    print(f"({answer['took_ms']:.0f} ms)")
    return 0
