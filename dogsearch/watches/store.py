"""Watches, their matches and the deliveries of those matches, in SQLite (WAL).

Why SQLite and not Redis beside the broker: it needs no set-up all-in-one, and every process that checks or
delivers (the gateway, Celery workers) already shares a folder with the gateway, the photo store's; a UNIQUE
(watch, dog) key and one transaction per batch of matches make a check run twice (a worker killed before it
acknowledged) add nothing, which Redis would need Lua for. WAL lets readers and one writer work at once across
processes; its shared memory needs the processes on one host (a network filesystem is not supported).

A match and its pending delivery are written in one transaction (an outbox): a delivery is never lost between
the two. Sending takes a lease on the delivery (state `sending`), so two senders never send it at once; a sender
that dies mid-send leaves the lease to run out, and the delivery is sent again (receivers deduplicate on the
X-Dogsearch-Delivery header). Each attempt is counted when it starts, so attempts stay bounded across crashes.

Each watch's known rival (the best other dog its search was seen to show, and its score: Watches learns it) is kept
here too, so every worker shares it; its table is made when a file from before it is opened, like every table (and
a column added since, like `_ADDED`'s).

A watch made from a stored dog ends when that dog is deleted (`ended_at`): whatever deletes it (the gateway, `dogsearch
check --repair --drop-missing`) says so here, and every process that checks reloads its watches by the version; a
match of a watch that ended meanwhile is not recorded, in the same transaction as the others. Its end is delivered to
its webhook as a match is (`watch.ended`, an outbox row written with the end), keyed by the watched dog, which never
matches its own watch; the watch is read with that delivery's state (`ended_delivery`). The deliveries of the matches
it made while open keep their retries (news its owner still wants), signed with its secret of the moment, as its end's
is. An ended watch no longer counts toward its key's `max_per_owner`; as many ended ones again are kept, the oldest
past that deleted when the key makes a watch (else ending watches, by deleting one's own dogs, would grow the file
without bound).

Only the gateway makes the store (`WatchStore(make=True)` makes the file and marks it, `MARK`, also a file an older
gateway made); a Celery worker, or `dogsearch check`, opens the one its gateway made (`make=False`: never a file, and
no file without the mark, `not_a_store`): a worker looking in another folder would check new dogs against an empty
store of its own, and their alerts would be lost without a word. A file that an older worker made so carries no
mark, and is refused the same way."""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dogsearch.core.sqlite import SqliteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
  id TEXT PRIMARY KEY, owner TEXT, secret TEXT NOT NULL, dog_id TEXT, model TEXT NOT NULL, vectors BLOB NOT NULL,
  dim INTEGER NOT NULL, min_probability REAL NOT NULL, statuses TEXT NOT NULL, near_lat REAL, near_lon REAL,
  radius_km REAL, webhook_url TEXT, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS watches_owner ON watches (owner);
CREATE TABLE IF NOT EXISTS matches (
  watch TEXT NOT NULL, dog TEXT NOT NULL, score REAL NOT NULL, probability REAL NOT NULL, dog_payload TEXT NOT NULL,
  matched_at TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (watch, dog));
CREATE INDEX IF NOT EXISTS matches_seq ON matches (watch, seq);
CREATE TABLE IF NOT EXISTS deliveries (
  watch TEXT NOT NULL, dog TEXT NOT NULL, url TEXT NOT NULL, body BLOB NOT NULL, state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0,
  last_status INTEGER, last_error TEXT, delivered_at TEXT, PRIMARY KEY (watch, dog));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
CREATE TABLE IF NOT EXISTS attempts (
  watch TEXT NOT NULL, dog TEXT NOT NULL, n INTEGER NOT NULL, at TEXT NOT NULL, status INTEGER, error TEXT,
  PRIMARY KEY (watch, dog, n));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('version', 0);
CREATE TABLE IF NOT EXISTS checks (
  key TEXT PRIMARY KEY, deliveries INTEGER NOT NULL, entries TEXT NOT NULL, gave_up_at TEXT);
CREATE TABLE IF NOT EXISTS rivals (watch TEXT PRIMARY KEY, entry TEXT NOT NULL, score REAL NOT NULL);
"""
# Columns added since: a watch's end (its dog deleted), why a check was given up.
_ADDED = {"watches": {"ended_at": "TEXT"}, "checks": {"reason": "TEXT"}}
_WATCH_COLUMNS = ("id, owner, dog_id, model, vectors, dim, min_probability, statuses, near_lat, near_lon, radius_km, "
                  "webhook_url, created_at, ended_at")
_WATCH_WIDTH = len(_WATCH_COLUMNS.split(","))
_DELIVERY_COLUMNS = "d.state, d.attempts, d.last_status, d.last_error, d.delivered_at"
_ATTEMPT_COLUMNS = "n, at, status, error"
# a watch and the delivery of its end (keyed by its own dog, which never matches it: only an ended one has it)
_WITH_END = (f"SELECT {_WATCH_COLUMNS}, {_DELIVERY_COLUMNS} FROM watches LEFT JOIN deliveries d "
             "ON d.watch = watches.id AND d.dog = watches.dog_id AND watches.ended_at IS NOT NULL")


MARK = "made_by_gateway"  # the meta row of a store a gateway made (or has opened since)


class StoreMissing(Exception):
    """No watch store a gateway made where this process (a Celery worker) looks: it makes none."""


def not_a_store(path: Path) -> str | None:
    """Why `path` is not a watch store that a gateway made (no file, one being made, a file without `MARK`), or
    None. Reads it only (read-only: it neither makes the file nor writes to it)."""
    if not path.is_file():
        return f"no watch store at {path}"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            marked = db.execute("SELECT 1 FROM meta WHERE key = ?", (MARK,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:  # an empty file, one still being made, another kind of file
        return f"{path} is not a watch store a gateway made ({exc})"
    return None if marked else (f"{path} is not a watch store a gateway made (no gateway's mark: a worker made it, "
                                "or a gateway older than this worker that has not started since)")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Watch:
    id: str
    owner: str | None  # the API key's name that made it (None: an open service)
    dog_id: str | None  # the watched dog (its own later photos never match), or None: watching uploaded photos
    model: str  # the id of its vectors: only dogs of the same vectors are compared
    vectors: np.ndarray  # (n, dim) float32 unit rows; a new dog matches by the best of them
    min_probability: float
    statuses: tuple[str, ...]  # a new dog's status must be one of them; () any
    near: tuple[float, float] | None  # (lat, lon)
    radius_km: float | None
    webhook_url: str | None
    created_at: str  # RFC 3339 UTC, seconds: dogs stored from then on are new to it
    ended_at: str | None = None  # when its dog was deleted: it matches no more, its inbox stays
    # the delivery of its end to its webhook, read as a match's is (state, attempts, history); None: none
    ended_delivery: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "dog_id": self.dog_id, "min_probability": self.min_probability,
                "status": list(self.statuses) or None,
                "near": f"{self.near[0]},{self.near[1]}" if self.near else None, "radius_km": self.radius_km,
                "webhook_url": self.webhook_url, "created_at": self.created_at, "ended_at": self.ended_at,
                "ended_delivery": self.ended_delivery, "photos": len(self.vectors)}


@dataclass(frozen=True)
class NewMatch:
    watch: Watch
    dog_id: str
    score: float
    probability: float
    dog_payload: dict[str, Any]  # what the inbox and the webhook show of the dog (no owner)


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for sending: attempt number `attempt`, under a lease."""

    watch: str
    dog: str
    url: str
    body: bytes
    secret: str
    attempt: int


def _watch(row: sqlite3.Row | tuple) -> Watch:
    (wid, owner, dog_id, model, blob, dim, min_p, statuses, lat, lon, radius, url, created, ended) = row
    vectors = np.frombuffer(blob, dtype=np.float32).reshape(-1, dim)
    return Watch(wid, owner, dog_id, model, vectors, min_p, tuple(json.loads(statuses)),
                 None if lat is None else (lat, lon), radius, url, created, ended)


def _attempt(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(_ATTEMPT_COLUMNS.split(", "), row, strict=True))


def _delivery(row: Sequence[Any], history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A delivery's state from `_DELIVERY_COLUMNS` (None: no delivery), with its attempts."""
    state, attempts, status, error, delivered = row
    return None if state is None else {"state": state, "attempts": attempts, "last_status": status,
                                       "last_error": error, "delivered_at": delivered, "history": history}


class WatchStore(SqliteFile):
    """One connection behind a lock per process; other processes open their own (WAL; a busy writer is waited
    for)."""

    def __init__(self, path: Path, *, make: bool = True) -> None:
        """`make`: the gateway's (makes the file, and marks it as a gateway's); else only a store a gateway made is
        opened (StoreMissing otherwise), and nothing is made."""
        if not make and (why := not_a_store(path)) is not None:
            raise StoreMissing(why)
        # a committed match must survive a power cut (its notification would be lost): fsync on every commit
        super().__init__(path, _SCHEMA, synchronous="FULL", timeout=30, added=_ADDED, create=make)
        if make:
            with self._transaction():
                self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, 1)", (MARK,))

    def _bump(self) -> None:
        self.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")

    # --- watches ---------------------------------------------------------------------------------------------

    def create(self, watch: Watch, secret: str, max_per_owner: int | None = None) -> bool:
        """Stores a watch; False (nothing stored) when its owner has `max_per_owner` open ones already. Its owner's
        ended watches past `max_per_owner`, the oldest ended first, are deleted."""
        with self._transaction():
            if max_per_owner is not None:
                (n,) = self.db.execute("SELECT COUNT(*) FROM watches WHERE owner IS ? AND ended_at IS NULL",
                                       (watch.owner,)).fetchone()
                if n >= max_per_owner:
                    return False
                self._drop([wid for (wid,) in self.db.execute(
                    "SELECT id FROM watches WHERE owner IS ? AND ended_at IS NOT NULL "
                    "ORDER BY ended_at DESC, id DESC LIMIT -1 OFFSET ?", (watch.owner, max_per_owner))])
            vectors = np.ascontiguousarray(watch.vectors, dtype=np.float32)
            self.db.execute(
                f"INSERT INTO watches ({_WATCH_COLUMNS}, secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (watch.id, watch.owner, watch.dog_id, watch.model, vectors.tobytes(), vectors.shape[1],
                 watch.min_probability, json.dumps(list(watch.statuses)), *(watch.near or (None, None)),
                 watch.radius_km, watch.webhook_url, watch.created_at, watch.ended_at, secret))
            self._bump()
        return True

    def get(self, watch_id: str) -> Watch | None:
        """The watch, an ended one with the delivery of its end."""
        found = self._with_ends(" WHERE id = ?", (watch_id,))
        return found[0] if found else None

    def list(self, owner: str | None = None, everyone: bool = False) -> list[Watch]:
        """`owner`'s watches, oldest first (every watch with `everyone`), the ended ones with the deliveries of their
        ends."""
        return self._with_ends(" ORDER BY created_at, id") if everyone else \
            self._with_ends(" WHERE owner IS ? ORDER BY created_at, id", (owner,))

    def _with_ends(self, rest: str, params: tuple[Any, ...] = ()) -> list[Watch]:
        """The watches that `rest` (what follows `_WITH_END`) selects, each ended one with its end's delivery and its
        attempts."""
        with self.lock:
            rows = self.db.execute(_WITH_END + rest, params).fetchall()
            history = {row[0]: [_attempt(a) for a in self.db.execute(
                f"SELECT {_ATTEMPT_COLUMNS} FROM attempts WHERE watch = ? AND dog = ? ORDER BY n", (row[0], row[2]))]
                for row in rows if row[_WATCH_WIDTH] is not None}
        return [replace(_watch(r[:_WATCH_WIDTH]), ended_delivery=_delivery(r[_WATCH_WIDTH:], history.get(r[0], [])))
                for r in rows]

    def open_watches(self) -> list[Watch]:
        """Every watch that has not ended: what new dogs are checked against."""
        with self.lock:
            rows = self.db.execute(f"SELECT {_WATCH_COLUMNS} FROM watches WHERE ended_at IS NULL "
                                   "ORDER BY created_at, id").fetchall()
        return [_watch(r) for r in rows]

    def set_secret(self, watch_id: str, secret: str) -> bool:
        """The watch's deliveries are signed with `secret` from their next attempt on; False: no such watch."""
        with self._transaction():
            return self.db.execute("UPDATE watches SET secret = ? WHERE id = ?", (secret, watch_id)).rowcount == 1

    def dog_deleted(self, dog_id: str, ended_body: Callable[[Watch, str], bytes]) -> int:
        """A stored dog is gone: the watches made from it end (they match no more; each keeps its inbox until it is
        deleted), each with a pending delivery of its end where it has a webhook (`ended_body(watch, ended_at)`: its
        exact bytes), and it leaves every inbox, with its deliveries not sent yet (its page and photos are gone, and
        so is what its owner withdrew), but for those ends. Returns how many watches ended."""
        with self._transaction():
            at, t = now_iso(), time.time()
            ending = [_watch(r) for r in self.db.execute(
                f"SELECT {_WATCH_COLUMNS} FROM watches WHERE dog_id = ? AND ended_at IS NULL", (dog_id,))]
            self.db.execute("UPDATE watches SET ended_at = ? WHERE dog_id = ? AND ended_at IS NULL", (at, dog_id))
            self.db.execute("DELETE FROM matches WHERE dog = ?", (dog_id,))
            for table in ("deliveries", "attempts"):  # a watch's own dog is keyed only by the delivery of its end
                self.db.execute(f"DELETE FROM {table} WHERE dog = ? AND watch NOT IN "
                                "(SELECT id FROM watches WHERE dog_id = ?)", (dog_id, dog_id))
            self.db.executemany("INSERT OR IGNORE INTO deliveries (watch, dog, url, body, state, next_at) "
                                "VALUES (?, ?, ?, ?, 'pending', ?)",
                                [(w.id, dog_id, w.webhook_url, ended_body(w, at), t) for w in ending if w.webhook_url])
            if ending:
                self._bump()
        return len(ending)

    def delete(self, watch_id: str) -> bool:
        """The watch, its matches and its deliveries."""
        with self._transaction():
            gone = self._drop([watch_id])
        return gone == 1

    def _drop(self, watch_ids: Sequence[str]) -> int:
        """Deletes watches with their matches, deliveries and rivals (in the caller's transaction); how many were."""
        gone = 0
        for watch_id in watch_ids:
            gone += self.db.execute("DELETE FROM watches WHERE id = ?", (watch_id,)).rowcount
            for table in ("matches", "deliveries", "attempts", "rivals"):
                self.db.execute(f"DELETE FROM {table} WHERE watch = ?", (watch_id,))
        if watch_ids:
            self._bump()
        return gone

    def version(self) -> int:
        """Changes whenever a watch is made, ended or deleted, by any process: when a cached copy of them is
        stale."""
        with self.lock:
            return self.db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0]

    # --- known rivals ------------------------------------------------------------------------------------------

    def rivals(self, watch_ids: Sequence[str]) -> dict[str, tuple[str, float]]:
        """{watch: (the entry of its known rival, its score)} for those of `watch_ids` that have one."""
        ids, out = list(watch_ids), {}
        with self.lock:
            for i in range(0, len(ids), 500):  # SQLite bounds the parameters of one statement
                chunk = ids[i:i + 500]
                out |= {w: (entry, score) for w, entry, score in self.db.execute(
                    f"SELECT watch, entry, score FROM rivals WHERE watch IN ({','.join('?' * len(chunk))})", chunk)}
        return out

    def matched_dogs(self, watch_ids: Sequence[str], limit: int) -> dict[str, list[str]]:
        """{watch: the dogs it matched, the latest `limit`} for those of `watch_ids` that matched any."""
        ids, out = list(watch_ids), {}
        with self.lock:
            for i in range(0, len(ids), 500):  # SQLite bounds the parameters of one statement
                chunk = ids[i:i + 500]
                for watch, dog in self.db.execute(
                        f"SELECT watch, dog FROM (SELECT watch, dog, ROW_NUMBER() OVER (PARTITION BY watch ORDER BY "
                        f"seq DESC) AS n FROM matches WHERE watch IN ({','.join('?' * len(chunk))})) WHERE n <= ?",
                        [*chunk, limit]):
                    out.setdefault(watch, []).append(dog)
        return out

    def learn_rivals(self, learnt: Sequence[tuple[str, str, float]], forgotten: Sequence[tuple[str, str]] = ()) -> None:
        """Drops each (watch, entry) of `forgotten` that is still its watch's known rival (a dog deleted, or no longer
        one its search shows), then keeps each (watch, entry, score) of `learnt` that beats its watch's known rival,
        in one transaction (a worker that learnt a better one meanwhile keeps it). A deleted watch learns nothing."""
        if not learnt and not forgotten:
            return
        with self._transaction():
            self.db.executemany("DELETE FROM rivals WHERE watch = ? AND entry = ?", forgotten)
            self.db.executemany(
                "INSERT INTO rivals SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM watches WHERE id = ?) "
                "ON CONFLICT (watch) DO UPDATE SET entry = excluded.entry, score = excluded.score "
                "WHERE excluded.score > rivals.score",
                [(w, entry, score, w) for w, entry, score in learnt])

    # --- checks on workers -------------------------------------------------------------------------------------

    def deliver_check(self, key: str, entry_ids: Sequence[str]) -> int:
        """Counts one delivery of a check task (`key`) before it runs and returns the count: a redelivered task is
        one whose worker died running it."""
        with self._transaction():
            self.db.execute("INSERT INTO checks (key, deliveries, entries) VALUES (?, 1, ?) ON CONFLICT (key) "
                            "DO UPDATE SET deliveries = deliveries + 1", (key, json.dumps(list(entry_ids))))
            return self.db.execute("SELECT deliveries FROM checks WHERE key = ?", (key,)).fetchone()[0]

    def check_ran(self, key: str) -> None:
        """A check task ended (whatever its outcome): its count is no longer needed."""
        with self._transaction():
            self.db.execute("DELETE FROM checks WHERE key = ? AND gave_up_at IS NULL", (key,))

    def give_up_check(self, key: str, reason: str) -> None:
        """A check that will not run (it stopped its worker every time, its search service stayed down): kept with
        its dogs and `reason`, for an operator to see and run again (`dogsearch check`)."""
        with self._transaction():
            self.db.execute("UPDATE checks SET gave_up_at = ?, reason = ? WHERE key = ?", (now_iso(), reason, key))

    def given_up_checks(self) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute("SELECT key, deliveries, entries, gave_up_at, reason FROM checks "
                                   "WHERE gave_up_at IS NOT NULL ORDER BY gave_up_at").fetchall()
        return [{"key": k, "deliveries": n, "entries": json.loads(e), "gave_up_at": at, "reason": why}
                for k, n, e, at, why in rows]

    def forget_check(self, key: str) -> None:
        """A given-up check that has run since."""
        with self._transaction():
            self.db.execute("DELETE FROM checks WHERE key = ?", (key,))

    # --- matches ---------------------------------------------------------------------------------------------

    def record(self, matches: Sequence[NewMatch], body_of) -> int:
        """Records each match not recorded yet, and its pending delivery when its watch has a webhook, in one
        transaction; `body_of(match, matched_at)` makes the delivery's exact bytes. A match of a watch deleted or
        ended meanwhile (its dog deleted while the check ran) is dropped. Returns how many were new."""
        if not matches:
            return 0
        new = 0
        with self._transaction():
            (seq,) = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM matches").fetchone()
            at, t = now_iso(), time.time()
            for m in matches:
                seq += 1
                added = self.db.execute(
                    "INSERT OR IGNORE INTO matches SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS "
                    "(SELECT 1 FROM watches WHERE id = ? AND ended_at IS NULL)",
                    (m.watch.id, m.dog_id, m.score, m.probability, json.dumps(m.dog_payload), at, seq, m.watch.id),
                ).rowcount
                if added and m.watch.webhook_url:
                    self.db.execute("INSERT INTO deliveries (watch, dog, url, body, state, next_at) "
                                    "VALUES (?, ?, ?, ?, 'pending', ?)",
                                    (m.watch.id, m.dog_id, m.watch.webhook_url, body_of(m, at), t))
                new += added
        return new

    def matches(self, watch_id: str, limit: int) -> list[dict[str, Any]]:
        """The watch's matches, newest first, each with its delivery (None without a webhook) and the delivery's
        attempts (`history`)."""
        with self.lock:
            rows = self.db.execute(
                f"SELECT m.dog, m.score, m.probability, m.dog_payload, m.matched_at, {_DELIVERY_COLUMNS} "
                "FROM matches m LEFT JOIN deliveries d ON d.watch = m.watch AND d.dog = m.dog WHERE m.watch = ? "
                "ORDER BY m.seq DESC LIMIT ?", (watch_id, limit)).fetchall()
            history: dict[str, list[dict[str, Any]]] = {}
            for dog, *attempt in self.db.execute(
                    f"SELECT dog, {_ATTEMPT_COLUMNS} FROM attempts WHERE watch = ? ORDER BY dog, n", (watch_id,)):
                history.setdefault(dog, []).append(_attempt(attempt))
        return [{"dog_id": dog, "score": score, "probability": p, "dog_payload": json.loads(payload),
                 "matched_at": at, "delivery": _delivery(delivery, history.get(dog, []))}
                for dog, score, p, payload, at, *delivery in rows]

    # --- deliveries ------------------------------------------------------------------------------------------

    def due(self, limit: int) -> list[tuple[str, str]]:
        """Deliveries to send now: pending ones whose time has come, and sends whose lease ran out (a sender
        died)."""
        t = time.time()
        with self.lock:
            return self.db.execute(
                "SELECT watch, dog FROM deliveries WHERE (state = 'pending' AND next_at <= ?) "
                "OR (state = 'sending' AND lease_until <= ?) ORDER BY next_at LIMIT ?", (t, t, limit)).fetchall()

    def claim(self, watch_id: str, dog_id: str, lease_s: float) -> Claimed | None:
        """Takes a due delivery for one attempt (counted now), or None when another sender has it or it is not
        due."""
        t = time.time()
        with self._transaction():
            taken = self.db.execute(
                "UPDATE deliveries SET state = 'sending', lease_until = ?, attempts = attempts + 1 "
                "WHERE watch = ? AND dog = ? AND ((state = 'pending' AND next_at <= ?) "
                "OR (state = 'sending' AND lease_until <= ?))", (t + lease_s, watch_id, dog_id, t, t)).rowcount
            if not taken:
                return None
            url, body, attempts = self.db.execute(
                "SELECT url, body, attempts FROM deliveries WHERE watch = ? AND dog = ?", (watch_id, dog_id)).fetchone()
            row = self.db.execute("SELECT secret FROM watches WHERE id = ?", (watch_id,)).fetchone()
        if row is None:
            return None
        return Claimed(watch_id, dog_id, url, bytes(body), row[0], attempts)

    def finish(self, claimed: Claimed, status: int | None, error: str | None, delivered: bool,
               retry_at: float | None) -> None:
        """Records an attempt; the delivery is then delivered, pending again until `retry_at`, or failed (no
        `retry_at`)."""
        state = "delivered" if delivered else "pending" if retry_at is not None else "failed"
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?)",
                            (claimed.watch, claimed.dog, claimed.attempt, now_iso(), status, error))
            self.db.execute(
                "UPDATE deliveries SET state = ?, next_at = ?, lease_until = 0, last_status = ?, last_error = ?, "
                "delivered_at = ? WHERE watch = ? AND dog = ? AND attempts = ?",
                (state, retry_at or 0, status, error, now_iso() if delivered else None, claimed.watch, claimed.dog,
                 claimed.attempt))

    def close(self) -> None:
        with self.lock:
            self.db.close()
