"""Both job stores keep the same promises: each file counted once, first owner and first observation win,
look-alike hashes found by band."""
from __future__ import annotations

import pytest

from dogsearch.core import phash as ph
from dogsearch.jobs.store import RedisJobStore, SqliteJobStore, new_job
from tests.jobs.servers import REDIS_URL


@pytest.fixture(params=["redis", "sqlite"])
def store(request, tmp_path, redis_clean):
    s = RedisJobStore(REDIS_URL) if request.param == "redis" else SqliteJobStore(tmp_path / "jobs.sqlite3")
    yield s
    s.close()


def test_a_batch_recorded_twice_counts_once_and_finishes_the_job(store):
    store.create(new_job("j1", source="path", path="/x", root="/x", labels=None, payload={}, roots=["/x"]))
    assert store.get("j1")["skipped"] == 0
    assert store.state("j1") == "queued" and store.start("j1", 4, 3, ["inner.zip", "notes.txt"])
    assert (store.get("j1")["skipped"], store.get("j1")["skipped_files"]) == (3, ["inner.zip", "notes.txt"])
    batch = [("a.jpg", "indexed", None), ("b.jpg", "near_duplicate", None), ("c.jpg", "failed", "not an image")]
    store.record("j1", batch)
    store.record("j1", batch)  # a re-delivered batch
    job = store.get("j1")
    assert (job["state"], job["indexed"], job["near_duplicates"], job["failed"]) == ("running", 2, 1, 1)
    assert job["errors"] == [{"file": "c.jpg", "reason": "not an image"}]
    assert store.recorded("j1") == {"a.jpg", "b.jpg", "c.jpg"}
    assert store.outcome_totals() == {"indexed": 1, "near_duplicate": 1, "failed": 1}  # what /metrics reads
    store.record("j1", [("d.jpg", "already_stored", None)])
    job = store.get("j1")
    assert (job["state"], job["duplicates"], job["already_stored"]) == ("done", 1, 1)
    store.record("j1", batch)  # delivered again after the job finished
    assert store.outcome_totals() == {"indexed": 1, "near_duplicate": 1, "failed": 1, "already_stored": 1}
    assert job["finished_at"] and job["images_per_s"] is not None
    assert not store.cancel("j1"), "a finished job is not cancelled"


def test_a_photo_marked_a_copy_after_its_call_looked_counts_as_a_near_duplicate(store):
    """Another call stored the original at the same moment and marked this job's photo its copy (ingest.py,
    _mark_copy): counted already, the file moves from indexed to near-duplicate; not counted yet, it is counted so
    when its batch records it. Either way once, and in what /metrics reads too."""
    store.create(new_job("j1", source="path", path="/x", root="/x", labels=None, payload={}, roots=["/x"]))
    store.start("j1", 3)
    store.claim("j1", [("e1", "a.jpg"), ("e2", "b.jpg"), ("e3", "c.jpg")])
    store.record("j1", [("a.jpg", "indexed", None)])
    assert store.copied_late("j1", ["e1", "e1-dog-2"]) == 1  # a photo's every entry: the one the job claimed counts
    assert store.copied_late("j1", ["e1"]) == 0  # a near-duplicate already
    assert store.copied_late("j1", ["e2"]) == 0  # not counted yet
    store.record("j1", [("b.jpg", "indexed", None), ("c.jpg", "indexed", None)])
    store.record("j1", [("b.jpg", "indexed", None)])  # its batch again
    job = store.get("j1")
    assert (job["state"], job["indexed"], job["near_duplicates"]) == ("done", 3, 2)
    assert store.outcome_totals() == {"indexed": 1, "near_duplicate": 2}
    assert store.copied_late("j1", ["unknown"]) == 0 and store.copied_late("no-such-job", ["e3"]) == 0


def test_first_owner_and_first_observation_win(store):
    # within one call (two files with the same bytes in a batch) and across calls (a batch re-delivered)
    assert store.claim("j", [("dog1", "a.jpg"), ("dog1", "b.jpg"), ("dog2", "c.jpg")]) == ["a.jpg", "a.jpg", "c.jpg"]
    assert store.claim("j", [("dog1", "a.jpg"), ("dog1", "b.jpg")]) == ["a.jpg", "a.jpg"]
    assert store.claim("other-job", [("dog1", "b.jpg")]) == ["b.jpg"]
    assert store.prior("j", [("dog1", False), ("dog2", True)]) == [False, True]
    # stored by this job's first run: still new to the job
    assert store.prior("j", [("dog1", True), ("dog2", False)]) == [False, True]
    assert store.claim("j", []) == [] and store.prior("j", []) == []


def test_near_hashes_are_found_through_any_band(store):
    base = 0x0123456789ABCDEF
    store.add_phashes([("dog1", base), ("dog2", base ^ 0xFFFFFFFFFFFFFFFF)])
    for bits in ([0], [0, 13, 27, 40, 63], list(range(0, 64, 11))[:5]):
        close = base
        for b in bits:
            close ^= 1 << b
        assert ph.distance(base, close) <= ph.NEAR_DISTANCE
        assert ("dog1", base) in store.near([close])[0]
    near_base, near_none = store.near([base, base ^ 0x00FF00FF00FF00FF])  # a batch: one answer per hash
    assert ("dog1", base) in near_base and ("dog2", base ^ 0xFFFFFFFFFFFFFFFF) not in near_base
    assert near_none == []
    assert store.near([]) == []


def test_a_finished_redis_job_lets_its_per_file_bookkeeping_expire(redis_clean):
    store = RedisJobStore(REDIS_URL, bookkeeping_ttl_s=120)
    try:
        store.create(new_job("j2", source="path", path="/x", root="/x", labels=None, payload={}, roots=["/x"]))
        store.start("j2", 1)
        store.claim("j2", [("dog1", "a.jpg")])
        store.prior("j2", [("dog1", False)])
        keys = [store._k("j2", part) for part in ("owners", "prior", "files")]
        store.record("j2", [])
        assert store.r.ttl(keys[0]) == -1, "a running job keeps its bookkeeping"
        store.record("j2", [("a.jpg", "indexed", None)])
        assert all(0 < store.r.ttl(key) <= 120 for key in keys)
        store.r.delete(*keys)  # as if expired: a late duplicate of the batch counts nothing
        store.record("j2", [("a.jpg", "indexed", None)])
        job = store.get("j2")
        assert (job["state"], job["indexed"]) == ("done", 1) and store.get("j2")["errors"] == []
    finally:
        store.close()
