"""Top-1 breed accuracy of the whole service (uploads + searches over HTTP) next to the bare model's
exact nearest neighbour on the same split: the service must lose nothing on the way."""
from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dogsearch.core.errors import DogsearchError
from dogsearch.core.images import PHOTO_SUFFIXES
from dogsearch.models.embedding import EmbeddingModel
from dogsearch.services.gateway.client import GatewayClient


@dataclass(frozen=True)
class Item:
    path: Path
    fields: dict[str, str]


def items_from_folders(root: Path) -> list[Item]:
    """DIR/<breed>/<photo>: the sub-folder name is the breed; photos directly in DIR get none."""
    items = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file()):
        rel = path.relative_to(root)
        items.append(Item(path, {"breed": rel.parts[0]} if len(rel.parts) > 1 else {}))
    return items


async def index_items(client: GatewayClient, items: Sequence[Item], concurrency: int = 4) -> list[tuple[str, str]]:
    """One upload a photo, as a user's client would add them (the bulk path is `dogsearch index`); the photos that
    failed, each with why."""
    failed: list[tuple[str, str]] = []
    limit = asyncio.Semaphore(concurrency)

    async def one(item: Item) -> None:
        async with limit:
            try:
                data = await asyncio.to_thread(item.path.read_bytes)
                await client.add_dog(data, filename=item.path.name, **item.fields)
            except (DogsearchError, OSError) as exc:
                failed.append((str(item.path), str(exc)))

    await asyncio.gather(*(one(item) for item in items))
    return failed


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
    failed = await index_items(client, gallery, concurrency=concurrency)
    if failed:
        raise RuntimeError(f"indexing failed: {failed[:3]}")
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


def evaluate_service(root: Path, gallery_per_breed: int) -> dict:
    """`dogsearch eval service DIR`: the first `gallery_per_breed` photos of each breed indexed through the
    all-in-one service in a temporary data directory, the rest searched; the bare model on the same split."""
    from dogsearch.services.allinone import create_all_in_one
    from dogsearch.services.embedder.settings import EmbedderSettings

    gallery, queries = split_per_breed(items_from_folders(root), gallery_per_breed)
    settings = EmbedderSettings()

    async def run() -> dict:
        with tempfile.TemporaryDirectory(prefix="dogsearch-eval-") as data_dir:
            app = create_all_in_one(Path(data_dir), embedder_settings=settings)
            async with app.router.lifespan_context(app):
                client = GatewayClient("http://dogsearch", app=app, timeout=600)
                bare = await asyncio.to_thread(settings.build_model)
                report, _, _ = await compare(client, bare, gallery, queries)
                await client.aclose()
                return report.as_dict() | {"model": bare.model_id}

    return asyncio.run(run())
