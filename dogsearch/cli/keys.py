"""`dogsearch keys add NAME --scope {search,write,admin} [--file PATH]`: makes an API key. The secret is printed
once; only `name:scope:sha256` is kept (appended to the keys file, or printed for DOGSEARCH_GATEWAY_API_KEYS)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dogsearch.core.access import SCOPES

# The gateway reads its keys once, at its start: a key added while it runs is an unknown key (401) until then.
RESTART = "a running gateway takes it when it restarts (it reads its keys at its start)"


def add_parser(sub) -> None:
    keys = sub.add_parser("keys", help="make API keys for the gateway")
    actions = keys.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="make a key: prints its secret once, and the line the gateway needs")
    add.add_argument("name", help="who holds it (letters, digits, '_', '.', '-'); dogs it adds are its own")
    add.add_argument("--scope", choices=SCOPES, required=True,
                     help="search: search and read; write: also add dogs and start jobs; admin: everything")
    add.add_argument("--file", type=Path, help="append the entry to this keys file (DOGSEARCH_GATEWAY_API_KEYS_FILE)")
    keys.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.access import ApiKey, InvalidKeyEntry, Keyring, new_secret, read_entries

    secret = new_secret()
    try:
        key = ApiKey.make(args.name, args.scope, secret)
        if args.file is not None:
            existing = [ApiKey.parse(e) for e in read_entries(args.file)] if args.file.exists() else []
            Keyring([*existing, key])  # a name given twice is refused here, not when the gateway starts
    except InvalidKeyEntry as exc:
        print(f"dogsearch keys: {exc.reason}", file=sys.stderr)
        return 2
    print(f"secret (shown once; send it as X-API-Key or Authorization: Bearer): {secret}")
    if args.file is None:
        print(f"add to DOGSEARCH_GATEWAY_API_KEYS: {key.entry}")
        print(RESTART)
        return 0
    _append(args.file, key.entry)
    print(f"appended to {args.file}: {key.entry}")
    print(RESTART)
    return 0


def _append(path: Path, entry: str) -> None:
    """Appends a line, the file readable by its owner only when this makes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        if f.tell() > 0 and not path.read_bytes().endswith(b"\n"):
            f.write("\n")
        f.write(entry + "\n")
