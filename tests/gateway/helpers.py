"""Requests the gateway tests make, as a client of the public API would."""
from __future__ import annotations

import httpx

RED, GREEN, BLUE, DARK_RED = (220, 20, 20), (20, 200, 40), (20, 40, 220), (160, 10, 10)


async def add(client: httpx.AsyncClient, data: bytes, **fields) -> httpx.Response:
    return await client.post("/v1/dogs", files={"image": ("dog.jpg", data)}, data=fields)


async def search(client: httpx.AsyncClient, data: bytes, **fields) -> httpx.Response:
    return await client.post("/v1/search", files={"image": ("q.jpg", data)}, data=fields)


async def total(client: httpx.AsyncClient) -> int:
    return (await client.get("/v1/dogs")).json()["total"]
