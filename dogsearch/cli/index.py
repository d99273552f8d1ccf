"""`dogsearch index DIR`: a bulk job for a folder of photos, on a running gateway (--url), on the Celery workers
(DOGSEARCH_BROKER_URL), or in this process; a progress bar from the job's counts, then a summary."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dogsearch.cli.common import add_target, api_key, gateway
from dogsearch.core.errors import TimedOut, Unavailable
from dogsearch.core.images import PHOTO_SUFFIXES
from dogsearch.core.progress import progress_bar


def add_parser(sub) -> None:
    index = sub.add_parser("index", help="add the photos of a folder to the gallery")
    index.add_argument("dir", type=Path)
    index.add_argument("--labels", choices=["folders", "dogs", "csv"], default="folders",
                       help="folders: DIR/<breed>/<photo>; dogs: DIR/<dog>/<photo>, each folder's photos one dog; "
                            "csv: a CSV with a 'path' column and field columns (a 'dog' column: rows of one value "
                            "are one dog)")
    index.add_argument("--csv", type=Path, help="the CSV for --labels csv (default DIR/labels.csv); its 'path' "
                                                "column is relative to the CSV's folder (with --url, an upload: "
                                                "the photos it names must be under DIR)")
    index.add_argument("--payload", help="JSON object: fields given to every photo")
    index.add_argument("--server-path", action="store_true",
                       help="with --url: the gateway reads DIR itself (under its allowed roots) instead of an upload")
    index.add_argument("--local", action="store_true",
                       help="run the job in this process even when DOGSEARCH_BROKER_URL is set")
    index.add_argument("--detach", action="store_true",
                       help="with --url or on the workers: print the job's id and return once it is queued "
                            "(dogsearch jobs show ID --follow follows it)")
    add_target(index)
    index.set_defaults(func=run)


@dataclass(frozen=True)
class Plan:
    root: Path  # DIR
    target: str  # what the job reads: DIR, or the CSV
    labels: str | None
    payload: dict[str, Any] | None
    readable: list[Path]  # the folders this job may read


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.errors import DogsearchError
    from dogsearch.core.logs import configure_logging
    from dogsearch.jobs.settings import JobsSettings

    configure_logging("WARNING")
    if not args.dir.is_dir():
        print(f"dogsearch index: {args.dir} is not a folder", file=sys.stderr)
        return 2
    root = args.dir.resolve()
    labels = args.labels if args.labels in ("csv", "dogs") else None
    csv = labels == "csv"
    if csv and args.csv and not args.csv.is_file():
        print(f"dogsearch index: {args.csv} is not a file", file=sys.stderr)
        return 2
    target = str((args.csv or root / "labels.csv").resolve()) if args.csv and csv else str(root)
    plan = Plan(root, target, labels, json.loads(args.payload) if args.payload else None,
                [root] + ([Path(target).parent] if csv and args.csv else []))
    settings = JobsSettings()
    elsewhere = bool(args.url) or bool(settings.broker_url and not args.local)
    if args.detach and not elsewhere:
        print("dogsearch index: --detach needs --url or DOGSEARCH_BROKER_URL: a job run in this process stops with "
              "it", file=sys.stderr)
        return 2
    where = (f" --url {args.url}" if args.url else "") + (f" --api-key-file {args.api_key_file}"
                                                          if args.url and args.api_key_file else "")
    follow = Following(detach=args.detach, where=where)
    try:
        if args.url:
            job = asyncio.run(via_gateway(plan, args.url, upload=not args.server_path, csv=args.csv,
                                          key=api_key(args.api_key_file), follow=follow))
        elif elsewhere:
            job = asyncio.run(on_workers(plan, settings, follow))
        else:
            job = asyncio.run(in_process(plan, args.data_dir, follow=follow))
    except DogsearchError as exc:
        print(f"dogsearch index: {exc.reason}", file=sys.stderr)
        return 1
    except LeftRunning as left:
        print(left, file=sys.stderr)
        return 0 if args.detach else 130
    except Cancelled as stopped:
        print(stopped, file=sys.stderr)
        return 130
    report_job(job)
    if job["state"] != "done":
        return 1
    return 1 if job["failed"] and not (job["indexed"] or job["duplicates"]) else 0


PATIENCE_S = 300.0  # how long a job is followed through a server that does not answer (a redeploy takes minutes)


class LeftRunning(Exception):
    """The command returns while its job goes on (--detach, or Ctrl-C while it runs elsewhere): how to find it."""


class Cancelled(Exception):
    """Ctrl-C while the job ran in this process: it was cancelled."""


@dataclass(frozen=True)
class Following:
    detach: bool = False
    where: str = ""  # the `dogsearch jobs` options that reach the job (--url URL)
    patience_s: float = PATIENCE_S

    async def job(self, created: dict, get: Callable[[], Awaitable[dict]],
                  cancel: Callable[[], Awaitable[Any]] | None = None) -> dict:
        """The job once it is over, with a progress bar. Ctrl-C (asyncio.run cancels this task): a job that runs
        elsewhere goes on (LeftRunning); one that runs here is cancelled first (`cancel`)."""
        job_id = created["id"]
        follow = (f"`dogsearch jobs show{self.where} {job_id} --follow` follows it, "
                  f"`dogsearch jobs cancel{self.where} {job_id}` stops it")
        if self.detach:
            print(job_id)  # on its own line, for a script: J=$(dogsearch index DIR --url URL --detach)
            raise LeftRunning(f"job {job_id} {created['state']}: {follow}")
        try:
            return await follow_job(get, patience_s=self.patience_s)
        except (Unavailable, TimedOut) as exc:
            if cancel is not None:  # it ran here: nothing goes on
                raise
            raise Unavailable(f"{exc.reason}; job {job_id} goes on on the server: {follow}") from exc
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # handled: what follows awaits as usual
            if cancel is None:
                raise LeftRunning(f"job {job_id} goes on: {follow}") from None
            await cancel()
            raise Cancelled(f"job {job_id} cancelled: what it stored stays; the same command again goes on from "
                            "there (a photo already stored is not embedded again)") from None


async def via_gateway(plan: Plan, url: str, *, upload: bool, csv: Path | None, key: str | None = None,
                      follow: Following = Following()) -> dict:
    """On a running gateway: DIR goes up as a zip, or with --server-path the gateway reads it itself."""
    async with gateway(url, key=key) as client:
        if not upload:
            created = await client.index_path(plan.target, plan.labels, plan.payload)
        else:
            # the server reads the upload's own labels.csv: another CSV goes in as that, its paths made DIR's
            labels_csv = (rebased_csv(csv, plan.root) if plan.labels == "csv" and csv
                          and csv.resolve() != plan.root / "labels.csv" else None)
            with tempfile.TemporaryDirectory(prefix="dogsearch-upload-") as tmp:
                archive = Path(tmp) / f"{plan.root.name}.zip"
                await asyncio.to_thread(zip_folder, plan.root, archive, labels_csv)
                created = await client.index_archive(archive, plan.labels, plan.payload)
        return await follow.job(created, lambda: client.job(created["id"]))


async def on_workers(plan: Plan, settings, follow: Following = Following()) -> dict:
    """Queued for the Celery workers, followed through the job store they update."""
    from dogsearch.jobs.service import Jobs

    jobs = Jobs(settings)
    async with jobs.running():
        # no key here: an operator's job, as one run in-process (an open gateway's caller is an admin)
        created = await jobs.submit_path(plan.target, plan.labels, plan.payload, roots=plan.readable, admin=True)
        return await follow.job(created, lambda: jobs.get(created["id"]))


async def in_process(plan: Plan, data_dir: Path, *, embedder_options: dict | None = None,
                     follow: Following = Following(), **all_in_one) -> dict:
    """Every service and the job in this process, on `data_dir`. The embedder loads its model for the first photo to
    embed, not at start-up: a folder already stored (`make demo` run again) embeds nothing and need not wait for it.
    `embedder_options`, `all_in_one`: the embedder's settings and create_all_in_one's options (tests)."""
    from dogsearch.services.embedder.settings import EmbedderSettings

    options = {"broker_url": None, "allowed_roots": [str(r) for r in plan.readable]}
    settings = EmbedderSettings(**{"preload": False} | (embedder_options or {}))
    async with gateway(None, data_dir, jobs_options=options, embedder_settings=settings, **all_in_one) as client:
        created = await client.index_path(plan.target, plan.labels, plan.payload)
        return await follow.job(created, lambda: client.job(created["id"]),
                                cancel=lambda: client.cancel_job(created["id"]))


def zip_folder(root: Path, dest: Path, labels_csv: str | None = None) -> int:
    """DIR as a zip for an upload job: photos (and labels.csv) only, stored uncompressed (photos don't shrink).
    `labels_csv`: the text of the upload's labels.csv, in place of DIR's own."""
    count = 0
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if labels_csv is not None and path == root / "labels.csv":
                continue
            if path.is_file() and (path.suffix.lower() in PHOTO_SUFFIXES or path.name == "labels.csv"):
                zf.write(path, path.relative_to(root).as_posix())
                count += 1
        if labels_csv is not None:
            zf.writestr("labels.csv", labels_csv)
    return count


def rebased_csv(csv_file: Path, root: Path) -> str:
    """The CSV given with --csv as the upload's labels.csv: its 'path' column is relative to the CSV's folder, the
    upload's to DIR, so each path is written again relative to DIR; a photo outside DIR is not uploaded: refused."""
    import csv
    import io
    import os

    from dogsearch.jobs.sources import JobInputError

    folder = csv_file.resolve().parent
    out = io.StringIO()
    try:
        with csv_file.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise JobInputError(f"{csv_file.name}: needs a 'path' column")
            writer = csv.DictWriter(out, reader.fieldnames, extrasaction="ignore")  # as the server drops extra cells
            writer.writeheader()
            for n, row in enumerate(reader, 2):
                name = row["path"] or ""
                # normpath, not resolve: a linked photo inside DIR is uploaded as the file it names there
                path = Path(os.path.normpath(folder / name))
                if not name or not path.is_relative_to(root):
                    raise JobInputError(f"{csv_file.name} line {n}: {name!r} is not under {root}: an upload holds "
                                        "DIR only (use --server-path for photos elsewhere)")
                writer.writerow(row | {"path": path.relative_to(root).as_posix()})
    except (UnicodeDecodeError, csv.Error) as exc:
        raise JobInputError(f"{csv_file.name}: not a UTF-8 CSV ({exc})") from exc
    return out.getvalue()


async def follow_job(get: Callable[[], Awaitable[dict]], progress: bool = True, every_s: float = 0.25,
                     patience_s: float = PATIENCE_S) -> dict:
    """Polls a job until it is over, with a progress bar from its counts. A server that stops answering (restarted,
    redeployed) is asked again for up to `patience_s`: its job goes on meanwhile."""
    bar = progress_bar(unit="photo", desc="indexing", enabled=progress)
    silent_since = None
    try:
        while True:
            try:
                job = await get()
            except (Unavailable, TimedOut) as exc:
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since > patience_s:
                    raise
                bar.set_postfix_str(f"the server does not answer ({exc.reason[:60]}): asking again")
                await asyncio.sleep(min(2.0, every_s * 8))
                continue
            silent_since = None
            if job["total"] and bar.total != job["total"]:
                bar.total = job["total"]
            bar.n = job["indexed"] + job["duplicates"] + job["failed"]
            bar.set_postfix(indexed=job["indexed"], duplicates=job["duplicates"], failed=job["failed"], refresh=False)
            bar.refresh()
            if job["state"] not in ("queued", "running"):
                return job
            await asyncio.sleep(every_s)
    finally:
        bar.close()


def report_job(job: dict) -> None:
    """The job's counts, its failures, the files it skipped and, unless it is done, its state (on stderr)."""
    print(job_summary(job))
    if job.get("skipped"):
        more = job["skipped"] - len(job["skipped_files"])
        print(f"  skipped {job['skipped']} files that are not photos: {', '.join(job['skipped_files'])}"
              + (f" and {more} more" if more else "") + " (an archive in the folder is not opened: unpack it)",
              file=sys.stderr)
    for error in job["errors"]:
        print(f"  failed: {error['file']}: {error['reason']}", file=sys.stderr)
    if job["state"] != "done":
        print(f"job {job['id']} {job['state']}" + (f": {job['error']}" if job.get("error") else ""), file=sys.stderr)


def job_summary(job: dict) -> str:
    return (f"indexed {job['indexed']}, duplicates {job['duplicates']} (already stored {job['already_stored']}), "
            f"near duplicates {job['near_duplicates']}, failed {job['failed']}")
