from __future__ import annotations

import asyncio
import time

import httpx


async def wait_job(client: httpx.AsyncClient, job_id: str, timeout: float = 30, until=None,
                   headers: dict[str, str] | None = None) -> dict:
    """Polls GET /v1/jobs/{id} (as the key of `headers`) until the job is over (or `until(job)` holds)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert r.status_code == 200, r.text
        job = r.json()
        if (until(job) if until else job["state"] not in ("queued", "running")):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']} after {timeout}s: {job}"
        await asyncio.sleep(0.05)


async def all_dogs(client: httpx.AsyncClient) -> list[dict]:
    dogs, cursor = [], None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/dogs", params=params)).json()
        dogs += page["items"]
        cursor = page["next"]
        if not cursor:
            return dogs


async def job_photo_totals(client: httpx.AsyncClient) -> dict[str, float]:
    """`dogsearch_job_photos_total` by outcome, as the gateway's /metrics says it."""
    text = (await client.get("/metrics")).text
    return {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line.startswith("dogsearch_job_photos_total{")}


async def wait_until(predicate, timeout: float, what):
    """predicate()'s value once it is true; `what()`: the failure's message, made when it fails (a log's tail by
    then)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what()
        await asyncio.sleep(0.1)
    return value
