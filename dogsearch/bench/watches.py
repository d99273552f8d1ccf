"""What watches cost the indexing of new dogs (docs/lost-and-found.md, Watches).

1. The check step alone, for a batch of 32 new dogs, with 100 and 10,000 open watches, in the two designs the
   issue names:
   - `per_watch`: one query per watch against the new vectors: each watch's vector asks the collection (the
     embedded engine, in this process: no HTTP round trip counted) for its nearest among the batch's dogs
     (a `dog_id` any-of filter);
   - `matrix` (what dogsearch ships, dogsearch/watches/watches.py): the batch's vectors against every watch's,
     kept in a matrix of their own, in one product.
   Both find the same matches (checked here). The shipped check then judges each new dog that passed a watch's
   first cut as a search would (its lead over the best other dog): one query per watch with a dog past the cut.
   Its cost is measured apart, with 10,000 watches and 0, 10, 100 or 1,000 of them passed by the batch (watches
   alike, as watches of one breed are).
   `rivals`: the realistic case, where the batch's look-alike passes P watches that it will not alert (each watch
   has a stored rival about as close as the new dog): a first batch, whose watches know no rival yet (one query
   each, which teaches them the rival), then three batches of look-alikes, which the known rivals rule out without
   a query; the queries made and the CPU ms of each check, for P = 10, 100, 1,000 (`--quick`: 10, 100).
2. Indexing throughput: photos/s of an in-process bulk job (the all-in-one app, `efficientnet_lite0`, the whole
   photo as the dog, small photos: the job's own overhead shows) with 0, 100 and 10,000 open watches, as ratios
   to 0 measured in the same run (0 again at the end shows the drift), and the share of each job's time spent in
   the check (timed around it in the same batches: a ratio that a busy machine does not blur).

    python -m dogsearch.bench.watches [--quick] [--json] [--only designs,rivals,ingest]
    dogsearch bench --only watches
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from dogsearch.bench.common import variations
from dogsearch.gallery.fields import INDEXED_FIELDS
from dogsearch.models.calibration import FILE_NAME, Calibration
from dogsearch.search.contract import Point
from dogsearch.search.edge import EdgeStore
from dogsearch.watches.store import Watch, WatchStore
from dogsearch.watches.watches import Watches

DIM, BATCH = 384, 32
FUTURE = "9999-01-01T00:00:00+00:00"  # the bench's dogs are newer than every watch
# A calibration for the bench's vectors: a cosine of 0.9 is a probability of 0.5 (random vectors score about 0).
CURVE = {"x": [0.0, 0.9, 1.0], "y": [0.0, 0.5, 1.0]}
FIRST = {"a": 100.0, "b": -3.0}  # a lead of 0.03 over the next dog is even odds
PASSING = (0, 10, 100, 1000)  # of 10,000 watches, how many the batch's dogs pass the first cut of
PARTS = ("designs", "rivals", "ingest")


def log(message: str) -> None:
    print(f"bench watches: {message}", file=sys.stderr, flush=True)


@contextmanager
def scratch():
    """A folder in memory where there is one: the bench measures the check, not the disk's fsyncs."""
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(prefix="dogsearch-bench-watches-", dir=shm if shm.is_dir() else None) as d:
        yield Path(d)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def alike(centre: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors close to `centre` (one dog's photos, or look-alikes of one breed)."""
    return unit(centre + 0.01 * rng.standard_normal((n, DIM)))


def add_watches(store: WatchStore, vectors: np.ndarray, model: str) -> list[Watch]:
    watches = []
    for v in vectors:
        watch = Watch(str(uuid.uuid4()), "bench", None, model, v[None, :], 0.5, (), None, None, None,
                      "2000-01-01T00:00:00+00:00")
        store.create(watch, "whsec_bench")
        watches.append(watch)
    return watches


class StoreIndex:
    """The gallery's Index over an embedded store in this process (only what the check asks); counts the queries."""

    def __init__(self, store: EdgeStore) -> None:
        self.store, self.queries = store, 0

    async def query(self, vector, k: int, filter=None) -> list[dict[str, Any]]:
        self.queries += 1
        return [{"id": h.id, "score": h.score, "payload": h.payload} for h in self.store.query(vector, k, filter)]

    async def lookup(self, ids, with_vector: bool = False) -> dict[str, dict[str, Any]]:
        return {p.id: {"id": p.id, "vector": p.vector, "payload": p.payload}
                for p in self.store.retrieve(list(ids), with_vector)}


class Judge:
    """The gateway's SameDog for the bench's calibration."""

    def __init__(self, cal: Calibration) -> None:
        self.cal = cal

    async def probabilities(self, model: str, scores: np.ndarray) -> np.ndarray:
        return self.cal.probabilities(scores)

    async def leading(self, model: str, scores: np.ndarray, others: np.ndarray) -> np.ndarray:
        return self.cal.leading(scores, others)

    async def judged_part(self, model: str) -> None:
        return None


def designs(quick: bool) -> dict:
    rng = np.random.default_rng(0)
    cal = Calibration("bench", "isotonic", CURVE, 0.5, first=FIRST)
    judge = Judge(cal)

    rounds = 3 if quick else 5
    out: dict = {}
    with scratch() as tmp, gallery(tmp, rng, 1000 if quick else 10_000) as edge:
        for n in (100, 10_000):
            store = WatchStore(tmp / f"watches-{n}.sqlite3")
            watch_vectors = unit(rng.standard_normal((n, DIM)))
            watches = add_watches(store, watch_vectors, "bench")
            batches = []
            for r in range(rounds):
                new = unit(rng.standard_normal((BATCH, DIM)))
                new[0] = alike(watch_vectors[r], 1, rng)[0]  # one match a batch
                ids = [str(uuid.uuid4()) for _ in range(BATCH)]
                edge.upsert([Point(i, v.tolist(), {"dog_id": i, "model": "bench", "created_at": FUTURE})
                             for i, v in zip(ids, new, strict=True)])
                batches.append(ids)
            edge.optimize()
            checker = Watches(store, StoreIndex(edge), judge)
            loop = asyncio.new_event_loop()
            loop.run_until_complete(checker.check([]))  # loads the watches' matrix, as a running gateway has
            matrix_s, per_watch_s, found_matrix, found_per_watch = [], [], set(), set()
            for ids in batches:
                start = time.perf_counter()
                loop.run_until_complete(checker.check(ids))
                matrix_s.append(time.perf_counter() - start)
                found_matrix |= {(m["dog_id"], w.id) for w in watches[:rounds] for m in store.matches(w.id, 10)
                                 if m["dog_id"] in ids}
                start = time.perf_counter()
                for w in watches:
                    hits = edge.query(w.vectors[0].tolist(), BATCH, {"dog_id": ids})
                    p = cal.probabilities([h.score for h in hits])
                    found_per_watch |= {(h.id, w.id) for h, q in zip(hits, p, strict=True) if q >= w.min_probability}
                per_watch_s.append(time.perf_counter() - start)
            loop.close()
            store.close()
            assert found_matrix == found_per_watch and len(found_matrix) == rounds, (found_matrix, found_per_watch)
            m, q = float(np.median(matrix_s)) * 1000, float(np.median(per_watch_s)) * 1000
            log(f"{n} watches, a batch of {BATCH}: matrix {m:.2f} ms, per watch {q:.1f} ms")
            out |= {f"watches_check_matrix_ms_{n}": round(m, 2), f"watches_check_per_watch_ms_{n}": round(q, 1),
                    f"watches_check_per_watch_over_matrix_{n}": round(q / m, 1)}
        out |= leads(tmp, edge, judge, rng, rounds)
    return out


@contextmanager
def gallery(tmp: Path, rng: np.random.Generator, existing: int):
    """An embedded store of `existing` random dogs, with the gallery's payload indexes."""
    with EdgeStore(tmp / "vectors") as edge:
        edge.ensure_collection(DIM, "bench", INDEXED_FIELDS)  # as the gallery makes it
        old = unit(rng.standard_normal((existing, DIM)))
        for i in range(0, existing, 1000):
            edge.upsert([Point(str(uuid.uuid4()), v.tolist(), {"model": "bench", "created_at": FUTURE})
                         for v in old[i:i + 1000]])
        yield edge


def leads(tmp: Path, edge: EdgeStore, judge: Judge, rng: np.random.Generator, rounds: int) -> dict:
    """The check of a batch of 32 with 10,000 watches, P of which one new dog of the batch passes (P alike
    watches: one breed's), each then judged by its lead: one query a passing watch."""
    out: dict = {}
    for passing in PASSING:
        store = WatchStore(tmp / f"watches-passing-{passing}.sqlite3")
        centres = unit(rng.standard_normal((rounds, DIM)))
        vectors = unit(rng.standard_normal((10_000, DIM)))
        for r in range(rounds):  # the batch of round r: one dog that the r-th group of P watches all look like
            vectors[r * passing:(r + 1) * passing] = alike(centres[r], passing, rng)
        add_watches(store, vectors, "bench")
        checker = Watches(store, StoreIndex(edge), judge)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(checker.check([]))
        times, cpu, matched = [], [], 0
        for r in range(rounds):
            new = unit(rng.standard_normal((BATCH, DIM)))
            new[0] = alike(centres[r], 1, rng)[0]
            ids = [str(uuid.uuid4()) for _ in range(BATCH)]
            edge.upsert([Point(i, v.tolist(), {"dog_id": i, "model": "bench", "created_at": FUTURE})
                         for i, v in zip(ids, new, strict=True)])
            start, start_cpu = time.perf_counter(), time.process_time()
            matched += loop.run_until_complete(checker.check(ids))
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)  # this process's CPU: what the neighbours' load does not blur
        loop.close()
        store.close()
        assert matched == rounds * passing, (matched, passing)  # the lead over random dogs: every one alerts
        ms, cpu_ms = float(np.median(times)) * 1000, float(np.median(cpu)) * 1000
        log(f"10000 watches, a batch of {BATCH} passing {passing} of them: {ms:.1f} ms ({cpu_ms:.1f} ms of CPU)")
        out |= {f"watches_check_lead_ms_passing_{passing}": round(ms, 2),
                f"watches_check_lead_cpu_ms_passing_{passing}": round(cpu_ms, 2)}
    return out


def rivals(quick: bool) -> dict:
    """10,000 watches, P of them alike (one breed's); a dog stored before, as close to them as a new look-alike, holds
    every look-alike back. Batches of 32 each bring one look-alike: the first's P watches know no rival yet and query
    (learning it); the three after it are ruled out by the known rivals (their median, and the most queries one of
    them made)."""
    rng = np.random.default_rng(2)
    cal = Calibration("bench", "isotonic", CURVE, 0.5, first=FIRST)
    out: dict = {}
    with scratch() as tmp, gallery(tmp, rng, 1000 if quick else 10_000) as edge:
        edge.optimize()
        for passing in PASSING[1:3] if quick else PASSING[1:]:
            store = WatchStore(tmp / f"watches-rivals-{passing}.sqlite3")
            centre = unit(rng.standard_normal((1, DIM)))[0]
            vectors = unit(rng.standard_normal((10_000, DIM)))
            vectors[:passing] = alike(centre, passing, rng)
            add_watches(store, vectors, "bench")
            edge.upsert([Point(str(uuid.uuid4()), alike(centre, 1, rng)[0].tolist(),
                               {"dog_id": f"rival-{passing}", "model": "bench", "created_at": FUTURE})])
            index = StoreIndex(edge)
            checker = Watches(store, index, Judge(cal))
            loop = asyncio.new_event_loop()
            loop.run_until_complete(checker.check([]))
            for name, batches in (("first", 1), ("known", 3)):
                asked, times, cpu = [], [], []
                for _ in range(batches):
                    new = unit(rng.standard_normal((BATCH, DIM)))
                    new[0] = alike(centre, 1, rng)[0]
                    ids = [str(uuid.uuid4()) for _ in range(BATCH)]
                    edge.upsert([Point(i, v.tolist(), {"dog_id": i, "model": "bench", "created_at": FUTURE})
                                 for i, v in zip(ids, new, strict=True)])
                    queries, start, start_cpu = index.queries, time.perf_counter(), time.process_time()
                    assert loop.run_until_complete(checker.check(ids)) == 0  # the stored rival holds them back
                    times.append(time.perf_counter() - start)
                    cpu.append(time.process_time() - start_cpu)
                    asked.append(index.queries - queries)
                ms, cpu_ms = float(np.median(times)) * 1000, float(np.median(cpu)) * 1000
                log(f"10000 watches, a batch of {BATCH} passing {passing} of them, rivals {name}: {asked} queries, "
                    f"{ms:.1f} ms ({cpu_ms:.1f} ms of CPU)")
                out |= {f"watches_rivals_{name}_queries_passing_{passing}": max(asked),
                        f"watches_rivals_{name}_ms_passing_{passing}": round(ms, 2),
                        f"watches_rivals_{name}_cpu_ms_passing_{passing}": round(cpu_ms, 2)}
            loop.close()
            store.close()
    return out


def ingest(quick: bool) -> dict:
    """Photos/s of an in-process bulk job with 0, 100 and 10,000 open watches (then 0 again)."""
    from dogsearch.services.allinone import create_all_in_one
    from dogsearch.services.embedder.settings import EmbedderSettings

    n_photos = 96 if quick else 320
    counts = (0, 100, 10_000, 0)
    out: dict = {}
    with scratch() as tmp:
        for k in range(len(counts)):
            folder = tmp / "in" / f"set{k}"
            for i, (data, breed) in enumerate(variations(n_photos, seed=100 + k)):
                (folder / breed).mkdir(parents=True, exist_ok=True)
                (folder / breed / f"{i:05d}.jpg").write_bytes(data)
        models = tmp / "models"
        app = create_all_in_one(tmp / "data", embedder_settings=EmbedderSettings(model="efficientnet_lite0",
                                                                                 detector="none"),
                                gateway_options={"calibration_dir": models},
                                jobs_options={"allowed_roots": [tmp / "in"]})

        async def measure() -> list[tuple[float, float]]:
            """(photos/s, the share of the job's time spent checking) per run."""
            rates = []
            async with app.router.lifespan_context(app):
                parts = app.state.parts
                checking = parts.gallery.ingest.on_stored
                spent = [0.0]

                async def timed_check(entry_ids: list[str]) -> None:
                    start = time.perf_counter()
                    await checking(entry_ids)
                    spent[0] += time.perf_counter() - start

                parts.gallery.ingest.on_stored = timed_check
                model = await parts.gallery.space.ensure()
                dim = (await parts.gallery.embedder.info())["dim"]
                (models / model.split("@")[0]).mkdir(parents=True, exist_ok=True)
                (models / model.split("@")[0] / FILE_NAME).write_text(
                    json.dumps(Calibration(model, "isotonic", CURVE, 0.5).to_json()))
                rng = np.random.default_rng(1)
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                             timeout=600) as client:
                    for k, n in enumerate(counts):
                        store = parts.watches.store
                        for w in store.list(everyone=True):
                            store.delete(w.id)
                        add_watches(store, unit(rng.standard_normal((n, dim))), model)
                        await parts.watches.check([])  # the matrix loaded before the job, as in a running gateway
                        spent[0], start = 0.0, time.perf_counter()
                        r = await client.post("/v1/jobs/index", json={"path": str(tmp / "in" / f"set{k}")})
                        job_id = r.json()["id"]
                        while (job := (await client.get(f"/v1/jobs/{job_id}")).json())["state"] in ("queued",
                                                                                                   "running"):
                            await asyncio.sleep(0.2)
                        assert job["indexed"] == n_photos, job
                        share = spent[0] / (time.perf_counter() - start)
                        rates.append((job["images_per_s"], share))
                        log(f"bulk job of {n_photos} photos with {n} watches: {job['images_per_s']} photos/s, "
                            f"{share:.2%} of the time checking")
            return rates

        rates = asyncio.run(measure())
    # The share of a job's time spent checking is measured within the same batches, so it holds under a load that
    # moves photos/s from one job to the next (the two runs with 0 watches show how much).
    base = rates[0][0]
    for n, (rate, share) in zip(counts[1:3], rates[1:3], strict=True):
        out |= {f"watches_ingest_per_s_{n}": rate, f"watches_ingest_{n}_over_0": round(rate / base, 3),
                f"watches_ingest_check_share_{n}": round(share, 4)}
    out |= {"watches_ingest_per_s_0": base, "watches_ingest_per_s_0_again": rates[3][0],
            "watches_ingest_check_share_0": round(rates[0][1], 4), "watches_ingest_photos": n_photos}
    return out


def run(quick: bool = False, parts: tuple[str, ...] = PARTS) -> dict:
    out: dict = {}
    for part in parts:
        out |= {"designs": designs, "rivals": rivals, "ingest": ingest}[part](quick)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = tuple(args.only.split(","))
    if not set(parts) <= set(PARTS):
        parser.error(f"--only: of {', '.join(PARTS)}")
    result = run(args.quick, parts)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
