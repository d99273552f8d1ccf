"""The `dogsearch` command: serve the services (all in one process, or one each), index photos, search, measure,
train. One module a command (cli/<command>.py), each with `add_parser(sub)` (its arguments, and
`set_defaults(func=run)`) and `run(args) -> exit status`; a new command is a new module listed in COMMANDS. Heavy
imports happen inside `run`, so `dogsearch --help` stays quick."""
from __future__ import annotations

import argparse
import os
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from dogsearch.cli import bench, check, evaluate, index, jobs, keys, reindex, search, serve, train, worker

COMMANDS = (serve, index, jobs, worker, search, bench, evaluate, train, reindex, check, keys)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dogsearch", description="Find the most similar dogs in a collection from a "
                                                                 "photo: serve, index, search, measure, train.")
    sub = root.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, where a reader that has gone is caught below, not as Python exits
        return status
    except ValidationError as exc:  # settings from env or flags: fail fast, say which and why
        print(f"dogsearch: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a list or an object not written as JSON (ALLOWED_ROOTS=/imports): was a traceback
        print(f"dogsearch: invalid settings: {exc}{f' ({exc.__cause__})' if exc.__cause__ else ''}; lists and "
              "objects are written as JSON, e.g. [\"/imports\"]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dogsearch jobs list | head`: the reader has gone, and so has what was left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error as Python flushes at exit
        return 1
