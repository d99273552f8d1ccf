"""Bulk indexing jobs in the public API: start one from a server folder or manifest, or from an uploaded zip;
follow it; cancel it. The work runs on Celery workers (DOGSEARCH_BROKER_URL) or the embedded runner."""
from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile  # what the form parser gives (FastAPI's is a subclass)
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from dogsearch.core.access import Caller
from dogsearch.core.errors import UnsupportedMedia
from dogsearch.gallery.fields import parse_json_object
from dogsearch.jobs.service import FolderBeingIndexed, JobNotFound, Jobs
from dogsearch.jobs.sources import ArchiveTooLarge, JobInputError, NoDiskSpace
from dogsearch.services.errors import MalformedBody, error_response
from dogsearch.services.gateway.deps import UUID_PATTERN, CallerDep, JobsDep
from dogsearch.services.gateway.schemas import IndexRequest, Job, JobCreated, JobList
from dogsearch.services.gateway.settings import GatewaySettings

BUSY = {409: {"description": "a queued or running job indexes photos this one would (the same folder, one inside "
                            "or around it, one a link leads to, files a manifest lists): code folder_being_indexed, "
                            "with `job_id` when that job is the caller's to see"}}
LABELS = ("folders", "dogs", "csv")
_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["archive"], "properties": {
        "archive": {"type": "string", "format": "binary", "description": "a zip of photos (sub-folders are breeds "
                    "with labels=folders, dogs with labels=dogs)"},
        "labels": {"type": "string", "enum": list(LABELS)},
        "payload": {"type": "string", "description": "JSON object: fields given to every photo"}}}}}}}
# What an upload of unknown length reserves on the disk at a time, as it arrives.
RESERVE_STEP = 8 * 1024 * 1024


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/jobs", tags=["jobs"])

    @api.post("/index", status_code=202, response_model=JobCreated, responses=BUSY)
    async def index_path(jobs: JobsDep, caller: CallerDep, body: IndexRequest) -> JSONResponse:
        try:
            return _accepted(await jobs.submit_path(body.path, body.labels, body.payload, owner=caller.name,
                                                    admin=caller.may("admin")))
        except FolderBeingIndexed as exc:
            return _busy(exc, caller)

    disk = _Disk()  # this gateway's uploads in flight

    @api.post("/index/upload", status_code=202, response_model=JobCreated, responses=BUSY,
              openapi_extra=_UPLOAD_BODY)
    async def index_upload(request: Request, jobs: JobsDep, caller: CallerDep) -> JSONResponse:
        """A multipart form: `archive`, a zip of photos; `labels` (folders, dogs or csv); `payload`. The zip is
        received into the uploads folder, counted against its free-space floor as it arrives."""
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise UnsupportedMedia("POST /v1/jobs/index/upload takes multipart/form-data with an `archive` file")
        receiving = _Receiving(disk, jobs)
        form = _ArchiveForm(request, receiving.chunks(request), jobs.settings.uploads)
        try:
            declared = request.headers.get("content-length", "")
            await receiving.reserve(int(declared) if declared.isdigit() else 0)
            try:
                items = await form.parse()
            except MultiPartException as exc:  # said as Starlette's own form parsing says it (services/errors.py)
                raise HTTPException(400, exc.message) from exc
            except ClientDisconnect:
                raise MalformedBody("the body ended before the form did") from None
            archive, labels, payload = items.get("archive"), items.get("labels"), items.get("payload")
            if not isinstance(archive, UploadFile):
                raise JobInputError("archive: a zip file is required")
            if labels is not None and labels not in LABELS:
                raise JobInputError(f"labels: one of {', '.join(LABELS)}, not {labels[:32]!r}")
            fields = parse_json_object(payload if isinstance(payload, str) else None, "payload")
            archive.file.close()  # written whole: submit_archive reads it from its path
            if archive.size > jobs.settings.max_archive_bytes:
                raise ArchiveTooLarge(f"archive too large: over {jobs.settings.max_archive_bytes} bytes")
            if archive.size == 0:
                raise JobInputError("empty archive: zero bytes")
            return _accepted(await jobs.submit_archive(form.paths[-1], labels, fields,
                                                       name=archive.filename or "upload", owner=caller.name,
                                                       admin=caller.may("admin")))
        except FolderBeingIndexed as exc:  # only where the uploads folder is one jobs may index too
            return _busy(exc, caller)
        finally:
            receiving.close()
            form.discard()

    @api.get("", response_model=JobList)
    async def list_jobs(jobs: JobsDep, caller: CallerDep, limit: int = Query(50, ge=1, le=1000)) -> JobList:
        """An admin sees every job; another key its own."""
        owner = None if caller.may("admin") else caller.name
        return JobList(items=[Job(**j) for j in await jobs.list(limit, owner=owner)])

    @api.get("/{job_id}", response_model=Job)
    async def job_status(jobs: JobsDep, caller: CallerDep, job_id: str = PathParam(..., pattern=UUID_PATTERN)) -> Job:
        return Job(**await _job(jobs, job_id, caller))

    @api.delete("/{job_id}", response_model=Job)
    async def cancel_job(jobs: JobsDep, caller: CallerDep, job_id: str = PathParam(..., pattern=UUID_PATTERN)) -> Job:
        await _job(jobs, job_id, caller)
        return Job(**await jobs.cancel(job_id))

    return api


class _Disk:
    """The bytes this gateway's uploads in flight have reserved on the uploads' disk and not written yet: each
    reserves what it will write before it writes it, so uploads at once stay above the free-space floor together,
    not each on its own."""

    def __init__(self) -> None:
        self.pending = 0
        self.lock = asyncio.Lock()

    async def reserve(self, jobs: Jobs, nbytes: int) -> None:
        async with self.lock:
            room = await asyncio.to_thread(jobs.upload_room)
            if nbytes > room - self.pending:
                raise NoDiskSpace("not enough free disk space to receive the archive: try again later")
            self.pending += nbytes


class _Receiving:
    """One upload's share of _Disk: its declared length at once, else RESERVE_STEP at a time as its bytes come."""

    def __init__(self, disk: _Disk, jobs: Jobs) -> None:
        self.disk, self.jobs, self.held = disk, jobs, 0

    async def reserve(self, nbytes: int) -> None:
        await self.disk.reserve(self.jobs, nbytes)
        self.held += nbytes

    async def chunks(self, request: Request) -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if len(chunk) > self.held:
                await self.reserve(max(len(chunk) - self.held, RESERVE_STEP))
            yield chunk
            # asked for the next one: the parser has written this one, which the disk's free space now shows
            self.held -= len(chunk)
            self.disk.pending -= len(chunk)

    def close(self) -> None:
        self.disk.pending -= self.held
        self.held = 0


class _ArchiveForm(MultiPartParser):
    """A form whose files are written into `folder` as they arrive (`paths`): Starlette's parser writes them to the
    system's temp folder, whole before the route could look at the disk."""

    def __init__(self, request: Request, chunks: AsyncIterator[bytes], folder: Path) -> None:
        super().__init__(request.headers, chunks, max_files=1, max_fields=8)
        self.folder, self.paths = folder, []

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is not None:
            upload.file.close()  # Starlette's spooled file, still empty
            fd, path = tempfile.mkstemp(dir=self.folder, prefix=".upload-", suffix=".zip")
            self.paths.append(Path(path))
            upload.file = open(fd, "w+b")  # noqa: SIM115 (closed by the route, or by the parser on an error)
            self._files_to_close_on_error.append(upload.file)

    def discard(self) -> None:
        """Closes and removes the files received (once the job has unpacked the archive, or was refused)."""
        for file in self._files_to_close_on_error:
            file.close()
        for path in self.paths:
            path.unlink(missing_ok=True)


def _accepted(job: dict) -> JSONResponse:
    return JSONResponse({"id": job["id"], "state": job["state"]}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job['id']}"})


def _busy(exc: FolderBeingIndexed, caller: Caller) -> JSONResponse:
    """The refusal, with the job's id where the caller may read it (a client points at that job)."""
    return error_response(exc, **({"job_id": exc.job_id} if caller.sees(exc.owner) else {}))


async def _job(jobs, job_id: str, caller: Caller) -> dict:
    job = await jobs.get(job_id)
    # Another key's job is not there for this one (its paths and payload are none of its business).
    if job is None or not caller.sees(job.get("owner")):
        raise JobNotFound(f"no job {job_id}")
    return job
