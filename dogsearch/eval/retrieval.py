"""Leave-one-out retrieval quality of an embedder: every photo queries all the others.

``recall@k``: share of queries with a photo of the same label among the k nearest others.
``map``: mean over queries of the average precision of the full ranking (relevant = same label).
``images/s``: embedding throughput (decode + preprocess + forward), measured on this run.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dogsearch.core.judged import JudgedPart
from dogsearch.eval.splits import labelled_images, select
from dogsearch.eval.verification import cached
from dogsearch.gallery.expansion import Expansion, expanded_queries
from dogsearch.gallery.multiquery import Rule, combined_scores

KINDS = ("breed", "identity", "unseen-breed")  # how splits.select splits the folder


def retrieval_metrics(embeddings: np.ndarray, labels: Sequence[str], ks: Sequence[int] = (1, 5),
                      expansion: Expansion | None = None, judged: JudgedPart | None = None) -> dict:
    """Leave-one-out recall@k and mAP over L2-normalised rows (cosine similarity); with ``expansion``, in the order
    of each photo's expanded query, and with ``judged`` (a part that re-ranks), its first dogs ranked again, as the
    gallery's search ranks (gallery/expansion.py, core/judged.py)."""
    emb = np.asarray(embeddings, dtype=np.float32)
    n = emb.shape[0]
    if n < 2 or len(labels) != n:
        raise ValueError(f"need at least 2 embeddings with one label each, got {n} and {len(labels)} labels")
    queries = expanded_queries(emb, expansion) if expansion is not None else emb
    sims = queries @ emb.T
    np.fill_diagonal(sims, -np.inf)  # a photo never retrieves itself
    if judged is not None:
        sims = judged.searched(emb, sims, queries)
    return ranked_metrics(sims, labels, ks)


def ranked_metrics(sims: np.ndarray, labels: Sequence[str], ks: Sequence[int] = (1, 5)) -> dict:
    """Leave-one-out recall@k and mAP of rows of scores, each photo's against every photo (its own -inf)."""
    lab = np.asarray([str(x) for x in labels])
    n = sims.shape[0]
    order = np.argsort(-sims, axis=1, kind="stable")[:, : n - 1]
    relevant = lab[order] == lab[:, None]  # (n, n-1): is the r-th nearest of the same label?
    n_rel = relevant.sum(axis=1)
    if (n_rel == 0).any():
        raise ValueError("every label needs at least 2 photos (leave-one-out has nothing to find otherwise)")
    out = {f"recall@{k}": float(relevant[:, :k].any(axis=1).mean()) for k in ks}
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, n, dtype=np.float64)
    ap = (relevant * hits / ranks).sum(axis=1) / n_rel
    out["map"] = float(ap.mean())
    return out


def multi_photo_recall(embeddings: np.ndarray, labels: Sequence[str], n: int, min_photos: int | None = None,
                       rule: Rule = "mean") -> dict:
    """Recall@1 and mAP of queries made of ``n`` photos of one dog, combined by ``rule`` (gallery/multiquery.py: the
    search service's own). Each photo of a dog in turn is the one to find: the query is the dog's next ``n`` photos
    (in order, wrapping round), and the gallery is every other dog's photos and that one photo alone, so with any
    ``n`` the gallery is the same and only the query grows. Dogs are ranked as a search ranks them, each by its best
    photo; with one photo to find, a query's average precision is 1 / the rank of its dog. Only dogs with at least
    ``min_photos`` photos (default ``n + 1``) are queried: runs of several ``n`` over one ``min_photos`` ask of the
    same dogs."""
    emb = np.asarray(embeddings, dtype=np.float32)
    lab = np.asarray([str(x) for x in labels])
    need = n + 1 if min_photos is None else min_photos
    if n < 1 or need < n + 1:
        raise ValueError(f"query photos must be at least 1 and min_photos above them, got {n} and {need}")
    dogs, dog_of = np.unique(lab, return_inverse=True)
    hits = queries = 0
    precision = 0.0
    for d in range(len(dogs)):
        own = np.nonzero(dog_of == d)[0]
        if len(own) < need:
            continue
        others = dog_of != d
        for t in range(len(own)):
            group = own[[(t + 1 + j) % len(own) for j in range(n)]]
            scores = combined_scores(emb[group], emb, rule)
            best = np.full(len(dogs), -np.inf, dtype=np.float32)  # each other dog by its best photo
            np.maximum.at(best, dog_of[others], scores[others])
            rank = 1 + int((best > scores[own[t]]).sum())
            hits += rank == 1
            precision += 1.0 / rank
            queries += 1
    if not queries:
        raise ValueError(f"no dog has {need} photos")
    return {"query_photos": n, "rule": rule, "recall@1": float(hits / queries), "map": float(precision / queries),
            "queries": queries, "min_photos": need}


def embed_paths(model, paths: Sequence[Path], batch_size: int = 32, progress: bool = True,
                desc: str = "embedding") -> tuple[np.ndarray, float]:
    """Embed image files with the model's own preprocess + embed (as the service does).

    Returns (embeddings, seconds spent decoding, preprocessing and embedding)."""
    chunks = []
    start = time.perf_counter()
    with tqdm(total=len(paths), desc=desc, unit="img", disable=not progress) as bar:
        for i in range(0, len(paths), batch_size):
            batch = []
            for path in paths[i : i + batch_size]:
                with Image.open(path) as im:
                    batch.append(model.preprocess(im.convert("RGB")))
            chunks.append(model.embed(torch.stack(batch)))
            bar.update(len(batch))
    seconds = time.perf_counter() - start
    dim = getattr(model, "dim", 0)
    emb = np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)
    return emb, seconds


def evaluate_dir(model, root: Path, kind: str, *, split: str = "all", batch_size: int = 32,
                 progress: bool = True, query_photos: Sequence[int] = (), rules: Sequence[Rule] = ("mean",),
                 cache_dir: Path | None = None, expansion: Expansion | None = None,
                 judged: JudgedPart | None = None) -> dict:
    """Leave-one-out metrics of ``model`` over ROOT/<label>/<photo> (labels with >= 2 photos); with
    ``query_photos``, those of several query photos by each of ``rules``. ``cache_dir``: the vectors are kept there
    (by model and files), so a rerun (another rule, other numbers of photos) embeds nothing. ``expansion``: also
    the figures of the search's ranking with that query expansion (under "search"); ``judged``: the model's judged
    part (its calibration's), whose re-ranking the search's figures apply too."""
    items, emb, seconds = dir_vectors(model, root, kind, split=split, batch_size=batch_size, progress=progress,
                                      cache_dir=cache_dir)
    result = retrieval_metrics(emb, [lab for _, lab in items])
    expanded = expansion is not None and expansion.on
    reranked = judged is not None and judged.rerank is not None
    if expanded or reranked:
        result["search"] = retrieval_metrics(emb, [lab for _, lab in items], expansion=expansion if expanded else None,
                                             judged=judged if reranked else None)
        if expanded:
            result["search"]["query_expansion"] = {"neighbours": expansion.neighbours, "power": expansion.power}
        if reranked:
            result["search"]["rerank"] = asdict(judged.rerank)
    if query_photos:  # every n against the same dogs and galleries: dogs with a photo beyond the largest query
        need = max(query_photos) + 1
        result["query_photos"] = [multi_photo_recall(emb, [lab for _, lab in items], n, need, rule)
                                  for rule in rules for n in sorted(set(query_photos))]
    result.update({
        "images/s": round(len(items) / seconds, 2) if seconds else None,
        "model": model.model_id,
        "n_images": len(items),
        "n_labels": len({lab for _, lab in items}),
        "split": split,
        "device": str(getattr(model, "device", "cpu")),
    })
    return result


def dir_vectors(model, root: Path, kind: str, *, split: str = "all", batch_size: int = 32, progress: bool = True,
                cache_dir: Path | None = None) -> tuple[list[tuple[Path, str]], np.ndarray, float | None]:
    """The (path, label) items of ROOT/<label>/<photo> (labels with >= 2 photos), their whole photos' vectors, and
    the seconds embedding took (None: read from ``cache_dir``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    items = select(labelled_images(root), kind, split)  # type: ignore[arg-type]
    counts = Counter(label for _, label in items)
    items = [(p, lab) for p, lab in items if counts[lab] >= 2]
    if len(items) < 2:
        raise ValueError(f"{root} (split {split}) has no label with at least 2 photos")
    paths = [p for p, _ in items]
    timed: list[float] = []

    def embed() -> tuple[np.ndarray, int]:
        emb, seconds = embed_paths(model, paths, batch_size, progress, desc=f"eval {kind}")
        timed.append(seconds)
        return emb, 0

    key = {"model": model.model_id, "photos": "whole", "files": [str(p.relative_to(root)) for p in paths],
           "sha256": _files_digest(paths)}
    emb, _ = cached(cache_dir, key, embed)
    return items, emb, (timed[0] or None) if timed else None


def _files_digest(paths: Sequence[Path]) -> str:
    """Of the files' bytes: a cache of vectors never outlives a change of the photos."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def default_device(configured: str, explicitly_set: bool) -> str:
    """The embedder setting when it was set; otherwise the GPU when there is one."""
    if explicitly_set or configured != "cpu":
        return configured
    return "cuda" if torch.cuda.is_available() else "cpu"


def searched_part(model_id: str) -> JudgedPart | None:
    """The judged part of a model's vectors, from its calibration: how its search ranks (None: by the whole
    vector). A calibration that does not load is a ValueError."""
    from dogsearch.core.judged import judged_part
    from dogsearch.models.calibration import CalibrationError, load, path_for

    path = path_for(model_id)
    try:
        cal = load(path) if path.is_file() else None
    except CalibrationError as exc:
        raise ValueError(f"the model's calibration: {exc}") from exc
    return None if cal is None or cal.part is None else judged_part(cal.part)


def load_model(name: str | None, device: str | None, *, exact: bool = False):
    """Build the embedder as the service does (its settings, create_model, its preprocess). ``exact``: the
    network's own vectors (torch, fp32 unless the settings say otherwise): what training learns on."""
    from dogsearch.inference.runtimes import QUANTISED, default_precision, default_runtime
    from dogsearch.models.registry import create_model
    from dogsearch.services.embedder.settings import EmbedderSettings

    settings = EmbedderSettings()
    if "torch_threads" in settings.model_fields_set:  # else torch's default: this loop is one replica
        torch.set_num_threads(settings.torch_threads)
    dev = device or default_device(settings.device, "device" in settings.model_fields_set)
    asked = settings.precision if "precision" in settings.model_fields_set else "auto"
    runtime = "torch" if exact else settings.runtime if "runtime" in settings.model_fields_set else (
        default_runtime(dev, asked))
    precision = settings.precision if "precision" in settings.model_fields_set else default_precision(runtime, dev)
    if exact and precision in QUANTISED:
        precision = "fp32"
    if precision == "fp16" and not dev.startswith("cuda"):
        precision = "fp32"
    weights_path = settings.weights_path if name in (None, settings.model) else None
    threads = settings.torch_threads if "torch_threads" in settings.model_fields_set else None
    return create_model(name or settings.model, device=dev, precision=precision, weights_path=weights_path,
                        cache_dir=settings.cache_dir, runtime=runtime, threads=threads)
