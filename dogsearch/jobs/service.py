"""Submitting, reading and cancelling jobs: what the API and the CLI use, whichever runs the work."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dogsearch.core.errors import Conflict, NotFound
from dogsearch.gallery.ingest import Ingestor
from dogsearch.gallery.locks import SharedLocks
from dogsearch.jobs.settings import JobsSettings
from dogsearch.jobs.sources import (
    JobInputError,
    NoDiskSpace,
    Reads,
    check_fields,
    job_reads,
    remove_tree,
    resolve_source,
    shown_path,
    unpack_zip,
)
from dogsearch.jobs.store import ACTIVE, JobStore, SqliteJobStore, new_job
from dogsearch.jobs.work import clean_up

log = logging.getLogger("dogsearch.jobs")
# An unpacked upload (or a zip being received) with no active job is left over from a crash once this old: younger
# ones may be another gateway's upload in progress.
LEFTOVER_AGE_S = 3600

# How many of the latest jobs a key's own are looked for among (jobs are few; a store has no index by owner).
LIST_SCAN = 500
# With a broker, one gateway replica at a time checks a new job against the active ones and stores it.
ACCEPTING = "dogsearch:lock:jobs:accepting"


class JobNotFound(NotFound):
    """No job with that id."""


class FolderBeingIndexed(Conflict):
    """A job indexes this folder, or one inside or around it, already: a second would store nothing new and count
    the first's photos again (a request sent twice, or retried after a timeout, is this; so is a job over the parent
    folder of one being indexed). `job_id`, `owner`: that job's."""

    def __init__(self, reason: str, *, job_id: str | None = None, owner: str | None = None,
                 source: str | None = None) -> None:
        super().__init__(reason, source=source)
        self.job_id, self.owner = job_id, owner


class Jobs:
    def __init__(self, settings: JobsSettings, ingestor: Ingestor | None = None) -> None:
        """Embedded (no broker): the app's `ingestor` runs the jobs; without one (`dogsearch jobs` beside a server
        on the same data) jobs are read and cancelled, and none is run or submitted here. With a broker: Celery
        workers do the work."""
        self.settings = settings
        self.celery = None
        self.runner = None
        self._submitting = asyncio.Lock()
        self.shared: SharedLocks | None = None
        if settings.broker_url:
            from dogsearch.jobs.celery_app import create_celery

            self.celery = create_celery(settings)
            self.shared = SharedLocks(settings.broker_url)
            self.store: JobStore = self.celery.dogsearch_store
        else:
            from dogsearch.jobs.local import LocalRunner

            self.store = SqliteJobStore(settings.data_dir / "jobs.sqlite3", max_errors=settings.max_listed_errors)
            self.runner = LocalRunner(self.store, ingestor, settings) if ingestor else None

    @property
    def mode(self) -> str:
        return "celery" if self.celery else "embedded"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Jobs]:
        await asyncio.to_thread(self.remove_leftovers)
        if self.runner:
            await self.runner.start()
        sweeper = asyncio.create_task(self._sweep_forever()) if self.settings.stall_timeout_s else None
        try:
            yield self
        finally:
            if sweeper:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            if self.runner:
                await self.runner.stop()
            await asyncio.to_thread(self.store.close)
            if self.shared:
                await self.shared.aclose()

    def remove_leftovers(self, min_age_s: float = LEFTOVER_AGE_S) -> list[str]:
        """Unpacked uploads of jobs that are over (a crash between the end and the clean-up, a cancel) and, once
        `min_age_s` old, uploads no active job owns (a crash mid-upload). Returns the names removed."""
        uploads = self.settings.uploads
        if not uploads.is_dir():
            return []
        removed = []
        for entry in uploads.iterdir():
            job = self.store.get(entry.name) if not entry.name.startswith(".") else None
            if job is not None and job["state"] in ACTIVE:
                continue
            if job is None and time.time() - entry.lstat().st_mtime < min_age_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                remove_tree(entry)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
        if removed:
            log.info("removed %d unpacked uploads left by jobs that are over", len(removed))
        return removed

    async def _sweep_forever(self) -> None:
        """Plans again or fails stalled jobs even when nobody reads them (a worker that hangs forever holds no job
        open)."""
        while True:
            await asyncio.sleep(min(60, max(1, self.settings.stall_timeout_s / 4)))
            try:
                for job_id in await asyncio.to_thread(self.store.active):
                    await self.get(job_id)
            except Exception:  # the store down for a while: the next sweep
                log.warning("the stalled-jobs sweep failed", exc_info=True)

    def _fail_if_stalled(self, job: dict[str, Any]) -> dict[str, Any]:
        """A job with no file finished for stall_timeout_s (its workers hang, or died with the queue lost) fails.
        With a broker it is first planned again (celery_app.replan: a message of it may have been lost to a Redis
        crash), and fails when it stalls again with no file finished since."""
        limit = self.settings.stall_timeout_s
        if not limit or job["state"] not in ACTIVE:
            return job
        replanned = job.get("replanned_at")
        progress = job.get("progress_at") or job.get("started_at") or job["created_at"]
        last = max(progress, replanned or "")  # ISO times of one format: ordered as strings
        if (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds() <= limit:
            return job
        again = replanned is not None and progress <= replanned
        if self.celery and not again:
            from dogsearch.jobs.celery_app import replan

            replan(self.celery, job)  # or another replica did, since this one read it
            return self.store.get(job["id"]) or job
        since = " since it was planned again" if again else ""
        self.store.fail(job["id"], f"stalled: no file finished for {limit} s{since}")
        clean_up(self.store, job["id"])
        return self.store.get(job["id"]) or job

    async def _dispatch(self, job_id: str) -> None:
        if self.runner:
            await self.runner.submit(job_id)
        else:
            from dogsearch.jobs.celery_app import PLAN

            await asyncio.to_thread(self.celery.send_task, PLAN, (job_id,))

    def _check(self, labels: str | None, payload: dict[str, Any] | None) -> dict[str, Any]:
        if labels not in (None, "folders", "dogs", "csv"):
            raise JobInputError(f"labels must be 'folders', 'dogs' or 'csv', got {labels!r}")
        return check_fields(dict(payload or {}), "payload", self.settings.field_limits)

    async def submit_path(self, path: str, labels: str | None = None, payload: dict[str, Any] | None = None,
                          roots: list[Path] | None = None, owner: str | None = None,
                          admin: bool = False) -> dict[str, Any]:
        """`roots`: the folders this caller may read (default: the allowed roots setting); `owner`: the API key's
        name, recorded on the job and on every dog it adds; `admin`: that key is an admin's, recorded too (its job
        fills in what another key's dog lacks, as its POST /v1/dogs does)."""
        payload = self._check(labels, payload)
        roots = self.settings.allowed_roots if roots is None else roots
        folder, manifest = await asyncio.to_thread(resolve_source, path, labels, roots)
        return await self._create(source="path", path=path, root=str(folder), manifest=manifest, labels=labels,
                                  payload=payload, roots=[str(r) for r in roots], owner=owner, admin=admin)

    def _indexing(self, reads: Reads) -> tuple[dict[str, Any], str] | None:
        """The queued or running job that reads photos `reads` reads, if any, and a folder of them (one whose worker
        died is failed here)."""
        for job_id in self.store.active():
            job = self.store.get(job_id)
            if job and (shared := reads.shared(Reads.of(job))) and self._fail_if_stalled(job)["state"] in ACTIVE:
                return job, shared
        return None

    async def submit_archive(self, archive: Path, labels: str | None = None,
                             payload: dict[str, Any] | None = None, name: str = "upload.zip",
                             owner: str | None = None, admin: bool = False) -> dict[str, Any]:
        """Unpacks an uploaded zip (already on disk) into the uploads folder and indexes it (`owner`, `admin`: as
        submit_path's)."""
        payload = self._check(labels, payload)
        job_id = str(uuid.uuid4())
        dest = (self.settings.uploads / job_id).resolve()
        s = self.settings
        try:
            await asyncio.to_thread(unpack_zip, archive, dest, max_files=s.max_archive_files,
                                    max_bytes=s.max_unpacked_bytes, max_ratio=s.max_compression_ratio,
                                    min_free_bytes=s.min_free_bytes)
            root = _single_folder(dest)
            manifest = None
            if labels == "csv":
                manifest = root / "labels.csv"
                if not manifest.is_file():
                    raise JobInputError("labels 'csv' needs a labels.csv at the top of the archive")
            return await self._create(job_id=job_id, source="upload", path=name, root=str(root), manifest=manifest,
                                      labels=labels, payload=payload, roots=[str(dest)], owner=owner,
                                      admin=admin)
        except BaseException:
            # refused before it became a job (its manifest, say): its files go too (they were left until the next
            # start: 169 MB a 5.7 MB zip); a job made runs on them
            if not await asyncio.to_thread(self._made, job_id):
                await asyncio.to_thread(remove_tree, dest)
            raise

    def _made(self, job_id: str) -> bool:
        """Whether the job was stored; so it is taken to be when the store does not answer (its files are then left
        for remove_leftovers)."""
        try:
            return self.store.get(job_id) is not None
        except Exception:
            return True

    def upload_room(self) -> int:
        """Bytes an upload may take on the uploads' disk before it goes below the free-space floor."""
        self.settings.uploads.mkdir(parents=True, exist_ok=True)
        room = shutil.disk_usage(self.settings.uploads).free - self.settings.min_free_bytes
        if room <= 0:
            raise NoDiskSpace("not enough free disk space to receive an archive: try again later")
        return room

    async def _create(self, *, job_id: str | None = None, manifest: Path | None, **fields: Any) -> dict[str, Any]:
        if self.runner is None and self.celery is None:
            raise RuntimeError("nothing runs jobs here: an embedded Jobs runs them with the app's Ingestor")
        # Where its photos are, found now: a malformed manifest is the caller's 4xx rather than a failed job, and
        # photos another job is indexing are not taken twice.
        root = Path(fields["root"])
        reads = await asyncio.to_thread(job_reads, root, manifest, fields["labels"], fields["payload"],
                                        [Path(r) for r in fields["roots"]], self.settings.field_limits)
        # two requests at once, here or at another gateway replica (through the broker): the second sees the first's
        async with self._submitting, (self.shared.hold(ACCEPTING) if self.shared else nullcontext()):
            if found := await asyncio.to_thread(self._indexing, reads):
                raise _busy(*found, root, manifest, fields["owner"])
            job = new_job(job_id or str(uuid.uuid4()), manifest=str(manifest) if manifest else None,
                          reads=reads.stored(), **fields)
            await asyncio.to_thread(self.store.create, job)
        await self._dispatch(job["id"])
        return await self.get(job["id"])

    async def get(self, job_id: str) -> dict[str, Any] | None:
        job = await asyncio.to_thread(self.store.get, job_id)
        return job and await asyncio.to_thread(self._fail_if_stalled, job)

    async def list(self, limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
        """The latest jobs; with `owner`, that key's among the latest LIST_SCAN."""
        if owner is None:
            jobs = await asyncio.to_thread(self.store.list, limit)
        else:
            jobs = await asyncio.to_thread(self.store.list, max(limit, LIST_SCAN))
            jobs = [job for job in jobs if job.get("owner") == owner][:limit]
        return [await asyncio.to_thread(self._fail_if_stalled, job) for job in jobs]

    async def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Stops a queued or running job: batches not yet started do nothing; what was indexed stays; an uploaded
        zip's files go now."""
        if await asyncio.to_thread(self.store.cancel, job_id):
            await asyncio.to_thread(clean_up, self.store, job_id)
        return await self.get(job_id)


def _busy(job: dict[str, Any], shared: str, root: Path, manifest: Path | None, owner: str | None) -> FolderBeingIndexed:
    """The refusal of a job whose photos in `shared` `job` is indexing: that job named to its own key (with what it
    was started on), the overlap named as a folder of the new job's."""
    named = f"job {job['id']} (started on {shown_path(job['path'])})" if job.get("owner") == owner else \
        "another key's job"
    if shared == str(root):
        where = "the folder of this manifest" if manifest else "this folder"
    else:
        where = f"{shown_path(shared)}, which this job would index too"
    return FolderBeingIndexed(f"{named} is indexing {where} ({job['state']}): wait for it to finish, or cancel it",
                              job_id=job["id"], owner=job.get("owner"))


def _single_folder(dest: Path) -> Path:
    """A zip of a folder holds that one folder: its sub-folders, not the folder itself, are the breeds."""
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
