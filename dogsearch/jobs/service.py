"""Submitting, reading and cancelling jobs: what the API and the CLI use, whichever runs the work."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from dogsearch.core.errors import NotFound
from dogsearch.gallery.ingest import Ingestor
from dogsearch.jobs.settings import JobsSettings
from dogsearch.jobs.sources import JobInputError, check_fields, remove_tree, resolve_source, unpack_zip
from dogsearch.jobs.store import JobStore, SqliteJobStore, new_job

# How many of the latest jobs a key's own are looked for among (jobs are few; a store has no index by owner).
LIST_SCAN = 1000


class JobNotFound(NotFound):
    """No job with that id."""


class Jobs:
    def __init__(self, settings: JobsSettings, ingestor: Ingestor | None = None) -> None:
        """Embedded (no broker): needs the app's `ingestor`. With a broker: Celery workers do the work."""
        self.settings = settings
        self.celery = None
        self.runner = None
        if settings.broker_url:
            from dogsearch.jobs.celery_app import create_celery

            self.celery = create_celery(settings)
            self.store: JobStore = self.celery.dogsearch_store
        else:
            from dogsearch.jobs.local import LocalRunner

            if ingestor is None:
                raise ValueError("the embedded job runner needs the app's Ingestor")
            self.store = SqliteJobStore(settings.data_dir / "jobs.sqlite3", max_errors=settings.max_listed_errors)
            self.runner = LocalRunner(self.store, ingestor, settings)

    @property
    def mode(self) -> str:
        return "celery" if self.celery else "embedded"

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Jobs]:
        if self.runner:
            await self.runner.start()
        try:
            yield self
        finally:
            if self.runner:
                await self.runner.stop()
            await asyncio.to_thread(self.store.close)

    async def _dispatch(self, job_id: str) -> None:
        if self.runner:
            await self.runner.submit(job_id)
        else:
            from dogsearch.jobs.celery_app import PLAN

            await asyncio.to_thread(self.celery.send_task, PLAN, (job_id,))

    def _check(self, labels: str | None, payload: dict[str, Any] | None) -> dict[str, Any]:
        if labels not in (None, "folders", "csv"):
            raise JobInputError(f"labels must be 'folders' or 'csv', got {labels!r}")
        return check_fields(dict(payload or {}), "payload")

    async def submit_path(self, path: str, labels: str | None = None, payload: dict[str, Any] | None = None,
                          roots: list[Path] | None = None, owner: str | None = None) -> dict[str, Any]:
        """`roots`: the folders this caller may read (default: the allowed roots setting); `owner`: the API key's
        name, recorded on the job and on every dog it adds."""
        payload = self._check(labels, payload)
        roots = self.settings.allowed_roots if roots is None else roots
        folder, manifest = await asyncio.to_thread(resolve_source, path, labels, roots)
        return await self._create(source="path", path=path, root=str(folder), manifest=manifest, labels=labels,
                                  payload=payload, roots=[str(r) for r in roots], owner=owner)

    async def submit_archive(self, archive: Path, labels: str | None = None,
                             payload: dict[str, Any] | None = None, name: str = "upload.zip",
                             owner: str | None = None) -> dict[str, Any]:
        """Unpacks an uploaded zip (already on disk) into the uploads folder and indexes it."""
        payload = self._check(labels, payload)
        job_id = str(uuid.uuid4())
        dest = (self.settings.uploads / job_id).resolve()
        s = self.settings
        try:
            await asyncio.to_thread(unpack_zip, archive, dest, max_files=s.max_archive_files,
                                    max_bytes=s.max_unpacked_bytes, max_ratio=s.max_compression_ratio)
            root = _single_folder(dest)
            manifest = None
            if labels == "csv":
                manifest = root / "labels.csv"
                if not manifest.is_file():
                    raise JobInputError("labels 'csv' needs a labels.csv at the top of the archive")
        except BaseException:
            await asyncio.to_thread(remove_tree, dest)
            raise
        return await self._create(job_id=job_id, source="upload", path=name, root=str(root), manifest=manifest,
                                  labels=labels, payload=payload, roots=[str(dest)], owner=owner)

    async def _create(self, *, job_id: str | None = None, manifest: Path | None, **fields: Any) -> dict[str, Any]:
        if manifest is not None:
            # Read the manifest now, so that a malformed one is the caller's 4xx rather than a failed job.
            from dogsearch.jobs.sources import list_items

            await asyncio.to_thread(list_items, Path(fields["root"]), manifest, fields["labels"], fields["payload"],
                                    [Path(r) for r in fields["roots"]])
        job = new_job(job_id or str(uuid.uuid4()), manifest=str(manifest) if manifest else None, **fields)
        await asyncio.to_thread(self.store.create, job)
        await self._dispatch(job["id"])
        return await self.get(job["id"])

    async def get(self, job_id: str) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.store.get, job_id)

    async def list(self, limit: int = 50, owner: str | None = None) -> list[dict[str, Any]]:
        """The latest jobs; with `owner`, that key's among the latest LIST_SCAN."""
        if owner is None:
            return await asyncio.to_thread(self.store.list, limit)
        jobs = await asyncio.to_thread(self.store.list, max(limit, LIST_SCAN))
        return [job for job in jobs if job.get("owner") == owner][:limit]

    async def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Stops a queued or running job: batches not yet started do nothing; what was indexed stays."""
        await asyncio.to_thread(self.store.cancel, job_id)
        return await self.get(job_id)


def _single_folder(dest: Path) -> Path:
    """A zip of a folder holds that one folder: its sub-folders, not the folder itself, are the breeds."""
    entries = list(dest.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
