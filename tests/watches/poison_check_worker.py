"""`python -m tests.watches.poison_check_worker ARGS`: `dogsearch worker ARGS` whose process dies (os._exit) whenever
it runs a check of new dogs against the watches: a check that kills every worker it reaches. Test-only."""
from __future__ import annotations

import os
import sys

from dogsearch.watches.watches import Watches


async def _die(self, entry_ids) -> int:
    os._exit(71)


if __name__ == "__main__":
    Watches.check = _die
    from dogsearch.cli import main

    raise SystemExit(main(["worker", *sys.argv[1:]]))
