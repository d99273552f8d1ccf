"""Top-1 breed accuracy of the whole service (uploads + searches over HTTP) next to the bare model's
exact nearest neighbour on the same split: the service must lose nothing on the way."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image

from dogsearch.cli.ingest import Item, index_items
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.services.gateway.client import GatewayClient


@dataclass
class QualityReport:
    n_gallery: int
    n_queries: int
    http_top1: float
    bare_top1: float
    agreement: float  # share of queries where both predict the same breed
    http_seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def split_per_breed(items: Sequence[Item], n_gallery: int) -> tuple[list[Item], list[Item]]:
    """The first `n_gallery` photos of each breed (sorted by path) go to the gallery, the rest are queries."""
    by_breed: dict[str, list[Item]] = {}
    for item in sorted(items, key=lambda i: str(i.path)):
        by_breed.setdefault(item.fields["breed"], []).append(item)
    gallery = [i for group in by_breed.values() for i in group[:n_gallery]]
    queries = [i for group in by_breed.values() for i in group[n_gallery:]]
    return gallery, queries


def bare_predictions(model: EmbeddingModel, gallery: Sequence[Item], queries: Sequence[Item],
                     batch: int = 32) -> list[str]:
    def embed(items: Sequence[Item]) -> np.ndarray:
        out = []
        for start in range(0, len(items), batch):
            images = [Image.open(i.path).convert("RGB") for i in items[start:start + batch]]
            out.append(model.embed_images(images))
        return np.concatenate(out)

    g, q = embed(gallery), embed(queries)
    nearest = np.argmax(q @ g.T, axis=1)
    return [gallery[j].fields["breed"] for j in nearest]


async def http_predictions(client: GatewayClient, gallery: Sequence[Item], queries: Sequence[Item],
                           concurrency: int = 4) -> list[str]:
    report = await index_items(client, list(gallery), concurrency=concurrency, progress=False)
    if report.failed:
        raise RuntimeError(f"indexing failed: {report.failed[:3]}")
    limit = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> str:
        async with limit:
            data = await asyncio.to_thread(item.path.read_bytes)
            hits = (await client.search(data, k=1))["results"]
            return hits[0]["payload"].get("breed", "") if hits else ""

    return list(await asyncio.gather(*(one(q) for q in queries)))


async def compare(client: GatewayClient, model: EmbeddingModel, gallery: Sequence[Item],
                  queries: Sequence[Item]) -> tuple[QualityReport, list[str], list[str]]:
    start = time.perf_counter()
    via_http = await http_predictions(client, gallery, queries)
    seconds = time.perf_counter() - start
    bare = await asyncio.to_thread(bare_predictions, model, gallery, queries)
    truth = [q.fields["breed"] for q in queries]

    def acc(pred: list[str]) -> float:
        return float(np.mean([p == t for p, t in zip(pred, truth, strict=True)]))

    report = QualityReport(
        n_gallery=len(gallery), n_queries=len(queries), http_top1=acc(via_http), bare_top1=acc(bare),
        agreement=float(np.mean([a == b for a, b in zip(via_http, bare, strict=True)])),
        http_seconds=round(seconds, 1),
    )
    return report, via_http, bare
