"""`python -m tests.jobs.poison_worker ARGS`: `dogsearch worker ARGS` whose process dies (os._exit, as a crashing
decoder or the kernel's OOM killer would end it) when it reads a job's file holding POISON. Test-only: a photo
that kills its worker cannot be made with the real decoders on demand."""
from __future__ import annotations

import os
import sys

from dogsearch.jobs import work

POISON = b"DOGSEARCH-TEST-POISON"


def _open_or_die(open_photo):
    def open_or_die(*args, **kwargs) -> bytes:
        data = open_photo(*args, **kwargs)
        if POISON in data:
            os._exit(70)
        return data
    return open_or_die


if __name__ == "__main__":
    work.open_photo = _open_or_die(work.open_photo)
    from dogsearch.cli import main

    raise SystemExit(main(["worker", *sys.argv[1:]]))
