"""Bulk indexing jobs in the public API: start one from a server folder or manifest, or from an uploaded zip;
follow it; cancel it. The work runs on Celery workers (DOGSEARCH_BROKER_URL) or the embedded runner."""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from dogsearch.core.access import Caller
from dogsearch.gallery.fields import parse_json_object
from dogsearch.jobs.service import FolderBeingIndexed, JobNotFound
from dogsearch.jobs.sources import ArchiveTooLarge, JobInputError, NoDiskSpace
from dogsearch.services.errors import error_response
from dogsearch.services.gateway.deps import UUID_PATTERN, CallerDep, JobsDep
from dogsearch.services.gateway.schemas import IndexRequest, Job, JobCreated, JobList
from dogsearch.services.gateway.settings import GatewaySettings

BUSY = {409: {"description": "a queued or running job indexes photos this one would (the same folder, one inside "
                            "or around it, one a link leads to, files a manifest lists): code folder_being_indexed, "
                            "with `job_id` when that job is the caller's to see"}}


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/jobs", tags=["jobs"])

    @api.post("/index", status_code=202, response_model=JobCreated, responses=BUSY)
    async def index_path(jobs: JobsDep, caller: CallerDep, body: IndexRequest) -> JSONResponse:
        try:
            return _accepted(await jobs.submit_path(body.path, body.labels, body.payload, owner=caller.name,
                                                    admin=caller.may("admin")))
        except FolderBeingIndexed as exc:
            return _busy(exc, caller)

    @api.post("/index/upload", status_code=202, response_model=JobCreated, responses=BUSY)
    async def index_upload(
        jobs: JobsDep,
        caller: CallerDep,
        archive: UploadFile = File(..., description="a zip of photos (sub-folders are breeds with labels=folders, "
                                                    "dogs with labels=dogs)"),
        labels: str | None = Form(None, pattern="^(folders|dogs|csv)$"),
        payload: str | None = Form(None, description="JSON object: fields given to every photo"),
    ) -> JSONResponse:
        fields = parse_json_object(payload, "payload")
        limit = jobs.settings.max_archive_bytes
        room = await asyncio.to_thread(jobs.upload_room)  # the archive itself must not fill the disk either
        fd, tmp = tempfile.mkstemp(dir=jobs.settings.uploads, prefix=".upload-", suffix=".zip")
        try:
            with open(fd, "wb") as out:
                size = 0
                while chunk := await archive.read(1024 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise ArchiveTooLarge(f"archive too large: over {limit} bytes")
                    if size > room:
                        raise NoDiskSpace("not enough free disk space to receive the archive: try again later")
                    await asyncio.to_thread(out.write, chunk)
            if size == 0:
                raise JobInputError("empty archive: zero bytes")
            return _accepted(await jobs.submit_archive(Path(tmp), labels, fields, name=archive.filename or "upload",
                                                       owner=caller.name, admin=caller.may("admin")))
        except FolderBeingIndexed as exc:  # only where the uploads folder is one jobs may index too
            return _busy(exc, caller)
        finally:
            Path(tmp).unlink(missing_ok=True)

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
