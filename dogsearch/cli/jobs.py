"""`dogsearch jobs [list | show ID [--follow] | cancel ID]`: the bulk jobs, wherever they run. A job goes on without
the command that started it (`dogsearch index --detach`, a closed terminal, Ctrl-C): this follows it again, or stops
it.

Where: a running gateway (--url, its /v1/jobs with the caller's key), else the job store the services use: Redis
beside DOGSEARCH_BROKER_URL, else --data-dir's jobs/ (SQLite; a server running on it sees a cancel at its next
batch). Nothing is started here: no model loads, no job runs; but a job read with no file finished for
DOGSEARCH_JOBS_STALL_TIMEOUT_S is planned again (through Redis) or failed, as the API does when it reads it."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from dogsearch.cli.common import add_target, api_key


def add_parser(sub) -> None:
    jobs = sub.add_parser("jobs", help="list bulk jobs, follow one, or cancel it")
    where = argparse.ArgumentParser(add_help=False)
    add_target(where)
    where.add_argument("--local", action="store_true",
                       help="the jobs in --data-dir even when DOGSEARCH_BROKER_URL is set")
    where.add_argument("--json", action="store_true", help="print the jobs as JSON")
    actions = jobs.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[where], help="the latest jobs, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    show = actions.add_parser("show", parents=[where], help="one job: its counts and failures")
    show.add_argument("job_id")
    show.add_argument("--follow", action="store_true", help="a progress bar until the job is over")
    cancel = actions.add_parser("cancel", parents=[where], help="stop a queued or running job (what it stored stays)")
    cancel.add_argument("job_id")
    jobs.set_defaults(func=run)


class JobSource(Protocol):
    """The gateway's API or the job store, read the same way; a job that is not there (or is another key's) is a
    NotFound."""

    async def list(self, limit: int) -> list[dict[str, Any]]: ...
    async def get(self, job_id: str) -> dict[str, Any]: ...
    async def cancel(self, job_id: str) -> dict[str, Any]: ...


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.errors import DogsearchError
    from dogsearch.core.logs import configure_logging

    configure_logging("WARNING")
    try:
        return asyncio.run(_act(args))
    except DogsearchError as exc:
        print(f"dogsearch jobs: {exc.reason}", file=sys.stderr)
        return 1


async def _act(args: argparse.Namespace) -> int:
    from dogsearch.cli.index import follow_job, report_job

    async with _source(args) as jobs:
        if args.action == "list":
            listed = await jobs.list(args.limit)
            if isinstance(jobs, _NoJobs) and not args.json:  # a typo in --data-dir reads as what it is
                print(f"no jobs in {jobs.folder}: no job store there")
            else:
                print(json.dumps(listed, indent=2) if args.json else job_table(listed))
            return 0
        if args.action == "cancel":
            job = await jobs.get(args.job_id)
            if job["state"] not in ("queued", "running"):
                if args.json:
                    print(json.dumps(job, indent=2))
                else:
                    report_job(job)
                print(f"dogsearch jobs: job {job['id']} is already over ({job['state']}): nothing to cancel",
                      file=sys.stderr)
                return 1
            job = await jobs.cancel(args.job_id)
        elif args.follow:
            job = await follow_job(lambda: jobs.get(args.job_id))
        else:
            job = await jobs.get(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        report_job(job)
    if args.action == "cancel":
        if job["state"] == "cancelled":  # the counts of now: a batch a worker had started still finishes
            print("a batch already under way still finishes: `dogsearch jobs show` gives its counts after",
                  file=sys.stderr)
        return 0 if job["state"] == "cancelled" else 1
    return 0 if job["state"] in ("queued", "running", "done") else 1


@asynccontextmanager
async def _source(args: argparse.Namespace) -> AsyncIterator[JobSource]:
    if args.url:
        from dogsearch.cli.common import gateway

        async with gateway(args.url, key=api_key(args.api_key_file)) as client:
            yield _GatewayJobs(client)
        return
    from dogsearch.jobs.service import Jobs
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.services.layout import DataLayout

    settings = JobsSettings()
    if settings.broker_url and not args.local:
        jobs = Jobs(settings)
    else:
        folder = DataLayout(args.data_dir).jobs
        if not (folder / "jobs.sqlite3").is_file():  # nothing to read: no store made for it
            yield _NoJobs(folder)
            return
        jobs = Jobs(settings.model_copy(update={"data_dir": folder, "broker_url": None}))
    try:
        yield _StoredJobs(jobs)
    finally:
        await asyncio.to_thread(jobs.store.close)


class _GatewayJobs:
    def __init__(self, client) -> None:
        self.client = client

    async def list(self, limit: int) -> list[dict[str, Any]]:
        return await self.client.jobs(limit)

    async def get(self, job_id: str) -> dict[str, Any]:
        return await self.client.job(job_id)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return await self.client.cancel_job(job_id)


class _StoredJobs:
    def __init__(self, jobs) -> None:
        self.jobs = jobs

    async def list(self, limit: int) -> list[dict[str, Any]]:
        return await self.jobs.list(limit)

    async def get(self, job_id: str) -> dict[str, Any]:
        return _found(job_id, await self.jobs.get(job_id))

    async def cancel(self, job_id: str) -> dict[str, Any]:
        return _found(job_id, await self.jobs.cancel(job_id))


class _NoJobs:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def list(self, limit: int) -> list[dict[str, Any]]:
        return []

    async def get(self, job_id: str) -> dict[str, Any]:
        return _found(job_id, None, f" (no jobs in {self.folder})")

    cancel = get


def _found(job_id: str, job: dict[str, Any] | None, where: str = "") -> dict[str, Any]:
    from dogsearch.jobs.service import JobNotFound

    if job is None:
        raise JobNotFound(f"no job {job_id}{where}")
    return job


def job_table(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs"
    rows = [("ID", "STATE", "CREATED", "FILES", "INDEXED", "DUPLICATES", "FAILED", "SOURCE")]
    rows += [(j["id"], j["state"], j["created_at"], str(j["total"]), str(j["indexed"]), str(j["duplicates"]),
              str(j["failed"]), j.get("path") or j.get("source") or "") for j in jobs]
    widths = [max(len(row[n]) for row in rows) for n in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                     for row in rows)
