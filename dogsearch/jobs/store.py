"""Job state: counts, errors, and the bookkeeping that makes a re-delivered batch count nothing twice.

Two stores with one interface: Redis (next to the Celery broker; every worker and gateway sees it) and SQLite
in the data directory (embedded mode: survives a restart). Each file's outcome is recorded at most once per job,
atomically with its counters, so a batch run twice (a worker killed before it acknowledged) changes nothing."""
from __future__ import annotations

import functools
import inspect
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from dogsearch.core import phash as ph
from dogsearch.core.errors import Unavailable
from dogsearch.core.sqlite import SqliteFile

ACTIVE = ("queued", "running")
# Outcome of one file -> the counters it adds to.
COUNTERS = {
    "indexed": ("indexed",),
    "near_duplicate": ("indexed", "near_duplicates"),
    "duplicate": ("duplicates",),
    "already_stored": ("duplicates", "already_stored"),
    "failed": ("failed",),
}
COUNTS = ("total", "indexed", "duplicates", "already_stored", "near_duplicates", "failed")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def finish_rate(job: dict[str, Any]) -> dict[str, Any]:
    """Adds images_per_s: files handled per second since the job started (until it finished)."""
    done = job["indexed"] + job["duplicates"] + job["failed"]
    rate = None
    if job.get("started_at"):
        end = datetime.fromisoformat(job["finished_at"]) if job.get("finished_at") else datetime.now(UTC)
        # Timestamps have millisecond resolution: a tiny job can start and finish within the same one.
        seconds = max((end - datetime.fromisoformat(job["started_at"])).total_seconds(), 0.001)
        rate = round(done / seconds, 2)
    return {**job, "images_per_s": rate}


class JobStore(Protocol):
    def create(self, job: dict[str, Any]) -> None: ...
    def get(self, job_id: str) -> dict[str, Any] | None: ...
    def list(self, limit: int) -> list[dict[str, Any]]: ...
    def state(self, job_id: str) -> str | None: ...
    def start(self, job_id: str, total: int, skipped: int = 0, skipped_files: Sequence[str] = ()) -> bool: ...
    def cancel(self, job_id: str) -> bool: ...
    def fail(self, job_id: str, reason: str) -> None: ...
    def recorded(self, job_id: str) -> set[str]: ...
    def claim(self, job_id: str, pairs: Sequence[tuple[str, str]]) -> list[str]: ...
    def prior(self, job_id: str, pairs: Sequence[tuple[str, bool]]) -> list[bool]: ...
    def record(self, job_id: str, outcomes: list[tuple[str, str, str | None]]) -> None: ...
    def outcome_totals(self) -> dict[str, int]: ...  # every job's files by outcome, each counted once, ever
    def copied_late(self, job_id: str, entries: Sequence[str]) -> int: ...
    def near(self, values: Sequence[int]) -> list[list[tuple[str, int]]]: ...  # per value: (id, hash) sharing a band
    def add_phashes(self, pairs: Sequence[tuple[str, int]]) -> None: ...
    def active(self) -> list[str]: ...
    def deliver(self, job_id: str, key: str) -> int: ...  # counts a delivery of batch `key`: how many so far
    def ping(self) -> None: ...  # BrokerUnavailable when the store does not answer
    def close(self) -> None: ...


def new_job(job_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": job_id, "state": "queued", "created_at": now(), "started_at": None, "finished_at": None,
            "error": None, **{c: 0 for c in COUNTS}, "skipped": 0, "skipped_files": [], **fields}


# --- Redis -------------------------------------------------------------------------------------------------------

# KEYS: job hash, outcomes hash, errors list, every job's totals by outcome, the files copied late (a set). ARGV:
# max listed errors, then JSON [[file, outcome, reason], ...].
# Counts only files without an outcome yet, then finishes the job once every file has one.
_RECORD = """
-- A finished job has an outcome for every file: a batch delivered again after its bookkeeping expired adds nothing.
if redis.call('HGET', KEYS[1], 'state') == 'done' then return 'done' end
local max_errors = tonumber(ARGV[1])
local counters = {indexed={'indexed'}, near_duplicate={'indexed','near_duplicates'}, duplicate={'duplicates'},
                  already_stored={'duplicates','already_stored'}, failed={'failed'}}
for _, rec in ipairs(cjson.decode(ARGV[2])) do
  if rec[2] == 'indexed' and redis.call('SISMEMBER', KEYS[5], rec[1]) == 1 then rec[2] = 'near_duplicate' end
  if redis.call('HSETNX', KEYS[2], rec[1], rec[2]) == 1 then
    redis.call('HSET', KEYS[1], 'progress_at', ARGV[3])
    for _, field in ipairs(counters[rec[2]]) do redis.call('HINCRBY', KEYS[1], field, 1) end
    redis.call('HINCRBY', KEYS[4], rec[2], 1)
    if rec[2] == 'failed' and redis.call('LLEN', KEYS[3]) < max_errors then
      redis.call('RPUSH', KEYS[3], cjson.encode({file=rec[1], reason=rec[3]}))
    end
  end
end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[3])  -- progress: `dogsearch check` finds jobs that make none
local v = redis.call('HMGET', KEYS[1], 'state', 'total', 'indexed', 'duplicates', 'failed')
if v[1] == 'running' and tonumber(v[3]) + tonumber(v[4]) + tonumber(v[5]) >= tonumber(v[2]) then
  redis.call('HSET', KEYS[1], 'state', 'done', 'finished_at', ARGV[3])
  return 'done'
end
return v[1]
"""
# KEYS: job hash, owners hash (entry -> file), outcomes hash, the files copied late (a set), every job's totals by
# outcome. ARGV: entries another call marked a copy of an older photo after this job's call looked (ingest.py,
# _mark_copy). A file counted "indexed" is counted a near-duplicate instead; one not counted yet will be.
_COPIED_LATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local moved = 0
for _, entry in ipairs(ARGV) do
  local file = redis.call('HGET', KEYS[2], entry)
  if file then
    local outcome = redis.call('HGET', KEYS[3], file)
    if not outcome then
      redis.call('SADD', KEYS[4], file)
    elseif outcome == 'indexed' then
      redis.call('HSET', KEYS[3], file, 'near_duplicate')
      redis.call('HINCRBY', KEYS[1], 'near_duplicates', 1)
      redis.call('HINCRBY', KEYS[5], 'indexed', -1)
      redis.call('HINCRBY', KEYS[5], 'near_duplicate', 1)
      moved = moved + 1
    end
  end
end
return moved
"""
# KEYS: job hash. ARGV: from-states (comma list), to-state, then field/value pairs to set.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
for s in string.gmatch(ARGV[1], '[^,]+') do
  if s == state then
    redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 3))
    return 1
  end
end
return 0
"""

# KEYS: job hash. ARGV: how many times the caller saw it planned again, now. Marks an active job planned once more,
# unless another gateway replica's sweep did since it looked (that one sends it).
_REPLAN = """
local v = redis.call('HMGET', KEYS[1], 'state', 'replans')
if (v[1] ~= 'queued' and v[1] ~= 'running') or tonumber(v[2] or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'replans', tonumber(ARGV[1]) + 1, 'replanned_at', ARGV[2])
return 1
"""


class BrokerUnavailable(Unavailable):
    """Redis, which holds the jobs and the photos' hashes, does not answer: retry later (a 503, not a 500)."""


# Redis refusing for its state, not for our command: out of memory (maxmemory, noeviction), a read-only replica,
# still loading its data, no primary
_REDIS_CANNOT = ("OOM", "READONLY", "LOADING", "MASTERDOWN")


def _unavailable_when_down(cls: type) -> type:
    """Each public method of `cls`: Redis unreachable raises BrokerUnavailable, which says so (an API answers 503 with
    Retry-After, a worker's batch is retried), instead of redis' ConnectionError (a 500)."""
    import redis

    def translated(method: Callable) -> Callable:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.InvalidResponse) as exc:
                raise BrokerUnavailable("the job broker (Redis) does not answer") from exc  # its error: the cause
            except redis.ResponseError as exc:
                if not str(exc).startswith(_REDIS_CANNOT):
                    raise  # a command of ours that Redis refuses: a bug, a 500 with its log
                raise BrokerUnavailable(f"the job broker (Redis) cannot take it now: {exc}") from exc
        return call

    for name, member in list(vars(cls).items()):
        if inspect.isfunction(member) and not name.startswith("_"):
            setattr(cls, name, translated(member))
    return cls


@_unavailable_when_down
class RedisJobStore:
    def __init__(self, url: str, *, max_errors: int = 1000, prefix: str = "dogsearch",
                 bookkeeping_ttl_s: int = 3600) -> None:
        """`bookkeeping_ttl_s`: how long a finished job keeps its per-file hashes (owners, first observations,
        outcomes: tens of thousands of fields for a big job), so that a batch redelivered late still counts
        nothing twice; the job itself and its errors stay."""
        import redis

        # Bounded waits: a Redis behind a partition would hold a gateway thread for minutes (the OS's connect timeout)
        self.r = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30)
        self.max_errors, self.p, self.bookkeeping_ttl_s = max_errors, prefix, bookkeeping_ttl_s
        self._record = self.r.register_script(_RECORD)
        self._transition = self.r.register_script(_TRANSITION)
        self._copied_late = self.r.register_script(_COPIED_LATE)
        self._replan = self.r.register_script(_REPLAN)

    def _k(self, job_id: str, part: str = "") -> str:
        return f"{self.p}:job:{job_id}" + (f":{part}" if part else "")

    def create(self, job: dict[str, Any]) -> None:
        flat = {k: json.dumps(v) if isinstance(v, dict | list | bool) else ("" if v is None else v)
                for k, v in job.items()}
        with self.r.pipeline() as pipe:
            pipe.hset(self._k(job["id"]), mapping=flat)
            pipe.zadd(f"{self.p}:jobs", {job["id"]: time.time()})
            pipe.execute()

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.r.pipeline() as pipe:
            pipe.hgetall(self._k(job_id))
            pipe.lrange(self._k(job_id, "errors"), 0, -1)
            raw, errors = pipe.execute()
        if not raw:
            return None
        job: dict[str, Any] = {k: (v or None) for k, v in raw.items()}
        for c in COUNTS:
            job[c] = int(raw.get(c) or 0)
        job["skipped"] = int(raw.get("skipped") or 0)
        job["skipped_files"] = json.loads(raw["skipped_files"]) if raw.get("skipped_files") else []
        job["payload"] = json.loads(raw["payload"]) if raw.get("payload") else {}
        job["roots"] = json.loads(raw["roots"]) if raw.get("roots") else []
        job["reads"] = json.loads(raw["reads"]) if raw.get("reads") else None
        job["admin"] = raw.get("admin") == "true"  # a job made before it was recorded: not an admin's
        job["replans"] = int(raw.get("replans") or 0)
        job["errors"] = [json.loads(e) for e in errors]
        return finish_rate(job)

    def list(self, limit: int) -> list[dict[str, Any]]:
        ids = self.r.zrevrange(f"{self.p}:jobs", 0, limit - 1)
        return [job for job in map(self.get, ids) if job]

    def state(self, job_id: str) -> str | None:
        return self.r.hget(self._k(job_id), "state")

    def start(self, job_id: str, total: int, skipped: int = 0, skipped_files: Sequence[str] = ()) -> bool:
        key = self._k(job_id)
        listed = ["total", total, "skipped", skipped, "skipped_files", json.dumps(list(skipped_files))]
        if self._transition(keys=[key], args=["queued", "running", *listed, "started_at", now(),
                                              "progress_at", now()]):
            return True
        return self._transition(keys=[key], args=["running", "running", *listed]) == 1

    def cancel(self, job_id: str) -> bool:
        if self._transition(keys=[self._k(job_id)], args=["queued,running", "cancelled", "finished_at", now()]) == 1:
            self._expire_bookkeeping(job_id)
            return True
        return False

    def fail(self, job_id: str, reason: str) -> None:
        if self._transition(keys=[self._k(job_id)], args=["queued,running", "failed", "finished_at", now(),
                                                          "error", reason]) == 1:
            self._expire_bookkeeping(job_id)

    def replan(self, job_id: str, seen: int) -> bool:
        """Marks a stalled job planned again (`replans` + 1, `replanned_at`) if it is active and was planned again
        `seen` times: True for the one caller that is to send it."""
        return self._replan(keys=[self._k(job_id)], args=[seen, now()]) == 1

    def _expire_bookkeeping(self, job_id: str) -> None:
        with self.r.pipeline() as pipe:
            for part in ("owners", "prior", "files", "deliveries", "late"):
                pipe.expire(self._k(job_id, part), self.bookkeeping_ttl_s)
            pipe.execute()

    def recorded(self, job_id: str) -> set[str]:
        return set(self.r.hkeys(self._k(job_id, "files")))

    def claim(self, job_id: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
        return self._first_value(self._k(job_id, "owners"), pairs)

    def prior(self, job_id: str, pairs: Sequence[tuple[str, bool]]) -> list[bool]:
        values = self._first_value(self._k(job_id, "prior"), [(d, "1" if stored else "0") for d, stored in pairs])
        return [v == "1" for v in values]

    def _first_value(self, key: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """Sets each field unless set, then reads them all back: one round trip for a batch."""
        if not pairs:
            return []
        with self.r.pipeline() as pipe:
            for field, value in pairs:
                pipe.hsetnx(key, field, value)
            pipe.hmget(key, [field for field, _ in pairs])
            return pipe.execute()[-1]

    def record(self, job_id: str, outcomes: list[tuple[str, str, str | None]]) -> None:
        state = self._record(keys=[self._k(job_id), self._k(job_id, "files"), self._k(job_id, "errors"),
                                   f"{self.p}:outcomes", self._k(job_id, "late")],
                             args=[self.max_errors, json.dumps([[f, o, r or ""] for f, o, r in outcomes]), now()])
        if state not in ACTIVE:
            self._expire_bookkeeping(job_id)

    def outcome_totals(self) -> dict[str, int]:
        return {outcome: int(n) for outcome, n in self.r.hgetall(f"{self.p}:outcomes").items()}

    def copied_late(self, job_id: str, entries: Sequence[str]) -> int:
        """Entries of this job's photos that another call marked copies of older photos after this job's call had
        looked (two uploads of look-alikes at the same moment): their files count as near-duplicates, whether their
        outcome is recorded yet or not. How many recorded outcomes changed."""
        if not entries:
            return 0
        keys = [self._k(job_id), self._k(job_id, "owners"), self._k(job_id, "files"), self._k(job_id, "late"),
                f"{self.p}:outcomes"]
        return int(self._copied_late(keys=keys, args=list(entries)))

    def near(self, values: Sequence[int]) -> list[list[tuple[str, int]]]:
        """One round trip for a whole batch of hashes."""
        if not values:
            return []
        with self.r.pipeline() as pipe:
            for value in values:
                for band in ph.bands(value):
                    pipe.smembers(f"{self.p}:phash:{band}")
            members = pipe.execute()
        n = len(ph.BANDS)
        found = [set().union(*members[i:i + n]) for i in range(0, len(members), n)]
        return [[(m.split(":")[1], int(m.split(":")[0], 16)) for m in sorted(f)] for f in found]

    def add_phashes(self, pairs: Sequence[tuple[str, int]]) -> None:
        with self.r.pipeline() as pipe:
            for dog_id, value in pairs:
                for band in ph.bands(value):
                    pipe.sadd(f"{self.p}:phash:{band}", f"{ph.to_hex(value)}:{dog_id}")
            pipe.execute()

    def active(self) -> list[str]:
        ids = self.r.zrange(f"{self.p}:jobs", 0, -1)
        with self.r.pipeline(transaction=False) as pipe:  # one round trip however many jobs were kept
            for job_id in ids:
                pipe.hget(self._k(job_id), "state")
            states = pipe.execute()
        return [job_id for job_id, state in zip(ids, states, strict=True) if state in ACTIVE]

    def deliver(self, job_id: str, key: str) -> int:
        return int(self.r.hincrby(self._k(job_id, "deliveries"), key, 1))

    def ping(self) -> None:
        self.r.ping()

    def close(self) -> None:
        self.r.close()


# --- SQLite ------------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (job TEXT, file TEXT, outcome TEXT, PRIMARY KEY (job, file));
CREATE TABLE IF NOT EXISTS errors (job TEXT, seq INTEGER PRIMARY KEY AUTOINCREMENT, file TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS owners (job TEXT, dog_id TEXT, file TEXT, PRIMARY KEY (job, dog_id));
CREATE TABLE IF NOT EXISTS prior (job TEXT, dog_id TEXT, stored INTEGER, PRIMARY KEY (job, dog_id));
CREATE TABLE IF NOT EXISTS phash (band TEXT, dog_id TEXT, hash TEXT, PRIMARY KEY (band, dog_id));
CREATE TABLE IF NOT EXISTS deliveries (job TEXT, batch TEXT, n INTEGER, PRIMARY KEY (job, batch));
CREATE TABLE IF NOT EXISTS totals (outcome TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS late (job TEXT, file TEXT, PRIMARY KEY (job, file));
CREATE INDEX IF NOT EXISTS errors_job ON errors (job, seq);
"""


class SqliteJobStore(SqliteFile):
    """One connection behind a lock: jobs are few and their writes small; the embedded runner is one process."""

    def __init__(self, path: Path, *, max_errors: int = 1000) -> None:
        # no fsync per commit: outcomes lost to a power cut are only redone (ids are content hashes: a redone photo
        # is stored once)
        super().__init__(path, _SCHEMA, synchronous="NORMAL")
        self.max_errors = max_errors

    def _load(self, job_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def _save(self, job: dict[str, Any]) -> None:
        self.db.execute("UPDATE jobs SET data = ? WHERE id = ?", (json.dumps(job), job["id"]))

    def create(self, job: dict[str, Any]) -> None:
        with self.lock:
            self.db.execute("INSERT INTO jobs (id, seq, data) "
                            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs), ?)", (job["id"], json.dumps(job)))

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            job = self._load(job_id)
            if job is None:
                return None
            job["errors"] = [{"file": f, "reason": r} for f, r in self.db.execute(
                "SELECT file, reason FROM errors WHERE job = ? ORDER BY seq", (job_id,))]
        return finish_rate(job)

    def list(self, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            ids = [r[0] for r in self.db.execute("SELECT id FROM jobs ORDER BY seq DESC LIMIT ?", (limit,))]
        return [job for job in map(self.get, ids) if job]

    def state(self, job_id: str) -> str | None:
        with self.lock:
            job = self._load(job_id)
        return job["state"] if job else None

    def _transition(self, job_id: str, from_states: tuple[str, ...], **changes: Any) -> bool:
        with self.lock:
            job = self._load(job_id)
            if job is None or job["state"] not in from_states:
                return False
            job.update(changes)
            self._save(job)
            return True

    def start(self, job_id: str, total: int, skipped: int = 0, skipped_files: Sequence[str] = ()) -> bool:
        listed = {"total": total, "skipped": skipped, "skipped_files": list(skipped_files)}
        return (self._transition(job_id, ("queued",), state="running", started_at=now(), progress_at=now(),
                                 **listed)
                or self._transition(job_id, ("running",), **listed))

    def cancel(self, job_id: str) -> bool:
        return self._transition(job_id, ACTIVE, state="cancelled", finished_at=now())

    def fail(self, job_id: str, reason: str) -> None:
        self._transition(job_id, ACTIVE, state="failed", finished_at=now(), error=reason)

    def recorded(self, job_id: str) -> set[str]:
        with self.lock:
            return {r[0] for r in self.db.execute("SELECT file FROM outcomes WHERE job = ?", (job_id,))}

    def claim(self, job_id: str, pairs: Sequence[tuple[str, str]]) -> list[str]:
        return self._first_value("owners", "file", job_id, pairs)

    def prior(self, job_id: str, pairs: Sequence[tuple[str, bool]]) -> list[bool]:
        return [bool(v) for v in self._first_value("prior", "stored", job_id, [(d, int(s)) for d, s in pairs])]

    def _first_value(self, table: str, column: str, job_id: str, pairs: Sequence[tuple[str, Any]]) -> list[Any]:
        with self._transaction():
            self.db.executemany(f"INSERT OR IGNORE INTO {table} VALUES (?, ?, ?)",
                                [(job_id, dog_id, value) for dog_id, value in pairs])
            return [self.db.execute(f"SELECT {column} FROM {table} WHERE job = ? AND dog_id = ?",
                                    (job_id, dog_id)).fetchone()[0] for dog_id, _ in pairs]

    def record(self, job_id: str, outcomes: list[tuple[str, str, str | None]]) -> None:
        with self._transaction():
            job = self._load(job_id)
            listed = self.db.execute("SELECT COUNT(*) FROM errors WHERE job = ?", (job_id,)).fetchone()[0]
            for file, outcome, reason in outcomes:
                if outcome == "indexed" and self.db.execute("SELECT 1 FROM late WHERE job = ? AND file = ?",
                                                            (job_id, file)).fetchone():
                    outcome = "near_duplicate"  # another call marked it a copy before this one counted it
                if self.db.execute("INSERT OR IGNORE INTO outcomes VALUES (?, ?, ?)",
                                   (job_id, file, outcome)).rowcount == 0:
                    continue
                job["progress_at"] = now()
                for counter in COUNTERS[outcome]:
                    job[counter] += 1
                self.db.execute("INSERT INTO totals VALUES (?, 1) ON CONFLICT (outcome) DO UPDATE SET n = n + 1",
                                (outcome,))
                if outcome == "failed" and listed < self.max_errors:
                    self.db.execute("INSERT INTO errors (job, file, reason) VALUES (?, ?, ?)", (job_id, file, reason))
                    listed += 1
            job["updated_at"] = now()  # progress: `dogsearch check` finds jobs that make none
            if job["state"] == "running" and job["indexed"] + job["duplicates"] + job["failed"] >= job["total"]:
                job.update(state="done", finished_at=now())
            self._save(job)

    def outcome_totals(self) -> dict[str, int]:
        with self.lock:
            return dict(self.db.execute("SELECT outcome, n FROM totals").fetchall())

    def copied_late(self, job_id: str, entries: Sequence[str]) -> int:
        """As RedisJobStore.copied_late."""
        moved = 0
        with self._transaction():
            job = self._load(job_id)
            if job is None:
                return 0
            for entry in entries:
                owner = self.db.execute("SELECT file FROM owners WHERE job = ? AND dog_id = ?",
                                        (job_id, entry)).fetchone()
                if owner is None:
                    continue
                counted = self.db.execute("SELECT outcome FROM outcomes WHERE job = ? AND file = ?",
                                          (job_id, owner[0])).fetchone()
                if counted is None:
                    self.db.execute("INSERT OR IGNORE INTO late VALUES (?, ?)", (job_id, owner[0]))
                elif counted[0] == "indexed":
                    self.db.execute("UPDATE outcomes SET outcome = 'near_duplicate' WHERE job = ? AND file = ?",
                                    (job_id, owner[0]))
                    self.db.executemany("INSERT INTO totals VALUES (?, ?) "
                                        "ON CONFLICT (outcome) DO UPDATE SET n = n + excluded.n",
                                        [("indexed", -1), ("near_duplicate", 1)])
                    job["near_duplicates"] += 1
                    moved += 1
            self._save(job)
        return moved

    def near(self, values: Sequence[int]) -> list[list[tuple[str, int]]]:
        marks = ",".join("?" * len(ph.BANDS))
        query = f"SELECT DISTINCT dog_id, hash FROM phash WHERE band IN ({marks})"
        with self.lock:
            found = [self.db.execute(query, ph.bands(value)).fetchall() for value in values]
        return [[(dog_id, int(h, 16)) for dog_id, h in rows] for rows in found]

    def add_phashes(self, pairs: Sequence[tuple[str, int]]) -> None:
        with self._transaction():
            rows = [(band, dog_id, ph.to_hex(value)) for dog_id, value in pairs for band in ph.bands(value)]
            self.db.executemany("INSERT OR IGNORE INTO phash VALUES (?, ?, ?)", rows)

    def active(self) -> list[str]:
        with self.lock:
            jobs = [json.loads(r[0]) for r in self.db.execute("SELECT data FROM jobs ORDER BY seq")]
        return [job["id"] for job in jobs if job["state"] in ACTIVE]

    def deliver(self, job_id: str, key: str) -> int:
        with self._transaction():
            self.db.execute("INSERT INTO deliveries VALUES (?, ?, 1) ON CONFLICT (job, batch) DO UPDATE SET n = n + 1",
                            (job_id, key))
            return self.db.execute("SELECT n FROM deliveries WHERE job = ? AND batch = ?", (job_id, key)).fetchone()[0]

    def ping(self) -> None:
        """A file in this process: nothing to reach."""

    def close(self) -> None:
        with self.lock:
            self.db.close()
