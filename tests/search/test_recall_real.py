"""HNSW recall against exact search, on real embeddings of real dog photos (the CNN: 1,000 of them)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from dogsearch.models.efficientnet import LITE0_MODEL
from dogsearch.models.registry import create_model
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from tests.conftest import SAMPLES

pytestmark = pytest.mark.real_model


def test_hnsw_recall_at_10_on_real_embeddings(tmp_path):
    model = create_model(LITE0_MODEL)
    photos = sorted((SAMPLES / "gallery").rglob("*.jpg")) + sorted((SAMPLES / "queries").rglob("*.jpg"))
    # 50 real photos, each seen 20 ways (crops, flips, colour): 1,000 real embeddings of real pictures,
    # in clusters as a gallery with several photos of each dog has them.
    torch.manual_seed(0)
    views = T.Compose([T.RandomResizedCrop(200, scale=(0.3, 1.0)), T.RandomHorizontalFlip(),
                       T.ColorJitter(0.3, 0.3, 0.3, 0.05)])
    images = [Image.open(p).convert("RGB") for p in photos]
    vectors = np.concatenate([model.embed_images([im] + [views(im) for _ in range(19)]) for im in images])

    # A low full-scan threshold so that queries really go through the graph at this size.
    with EdgeStore(tmp_path, full_scan_threshold_kb=100) as store:
        store.ensure_collection(model.dim, model.model_id)
        ids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(len(vectors))]
        for start in range(0, len(ids), 1000):
            store.upsert([Point(id=i, vector=v.tolist(), payload={}) for i, v in
                          zip(ids[start:start + 1000], vectors[start:start + 1000], strict=True)])
        store.optimize()
        assert store.stats()["indexed_vectors"] == len(ids)

        queries = np.random.default_rng(0).choice(len(vectors), size=60, replace=False)
        recall = []
        for q in queries:
            approx = {h.id for h in store.query(vectors[q].tolist(), 10)}
            exact = {h.id for h in store.query(vectors[q].tolist(), 10, exact=True)}
            recall.append(len(approx & exact) / 10)
    assert np.mean(recall) >= 0.98, np.mean(recall)
