"""Watches: "tell me when a dog like this one turns up". A watch holds the vectors of the dog looked for (a stored
dog's photos, or photos uploaded for it), how likely a match must be the same dog, and optional report conditions
(status, near a place); every dog stored later is checked against the open watches, and each match is recorded
once per (watch, dog), with its webhook delivery (dogsearch/watches/delivery.py).

The check compares a batch of new vectors with every watch's vectors at once: the watches' vectors are kept in
their own matrix (loaded from the store, reloaded when a watch comes or goes), and one matrix product scores the
batch against all of them. The other design, one query per watch against the new vectors in the search service,
costs a round trip per watch per batch: docs/lost-and-found.md has both measured (`dogsearch bench watches`).

A new dog is then judged as a search with the watch's photos would judge it (docs/lost-and-found.md, "Judged as a
search"): other dogs of the watched dog's breed score about as high as its own photos, so a match must also stand out
from the best other dog the watch's photos find. The product is the cheap first cut (a pair's probability is the
most a lead can leave: the cap only lowers it), and only the watches with a new dog past it ask the search service,
once each per batch, for the two dogs nearest to their photos among the dogs they would search: of the watch's
statuses and place, the watched dog left out, stored no later than the batch (so a check run again, or run late
behind a bulk job, judges against the same dogs).

Most pairs past the cut are look-alikes that will not alert, and need no query: each watch keeps a known rival (the
best other dog its search was seen to show, learnt from the queries' answers and the product, in the WatchStore).
Checked still shown and stored no later than the batch (one lookup a batch), it bounds a pair's probability from
above: the true rival scores at least as high. A pair whose bound is below min_probability is not queried; the
queries that remain decide as before, so the known rivals change no outcome, only the queries made."""
from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from dogsearch.core.errors import Conflict, InvalidInput, NotFound
from dogsearch.core.judged import JudgedPart
from dogsearch.gallery.contracts import Index
from dogsearch.gallery.fields import public
from dogsearch.gallery.gallery import nearest_dogs
from dogsearch.gallery.judged import SHOWN
from dogsearch.gallery.multiquery import Rule
from dogsearch.gallery.records import Match
from dogsearch.gallery.reports import MAX_RADIUS_KM, Place, ReportQuery, distance_km, stored_place
from dogsearch.search.contract import CollectionMissing
from dogsearch.watches.store import NewMatch, Watch, WatchStore, now_iso
from dogsearch.watches.targets import resolve

SECRET_PREFIX = "whsec_"
QUERIES_AT_ONCE = 8  # a batch that passes many watches asks the search service this many at a time
# A known rival's score, less this, is at most what the search engine scores it (float32 sums in another order);
# a known rival counts only this many km inside a watch's radius (the engine's geo arithmetic is not ours).
RIVAL_MARGIN, PLACE_MARGIN_KM = 1e-4, 0.01
LOOKUP_AT_ONCE = 10_000  # the most ids the search service looks up in one request
# A watch's latest matches, left out of the dogs a new one must stand out from (each a condition of its query).
MATCHED_NOT_RIVALS = 100
log = logging.getLogger("dogsearch.watches")


class Judge(Protocol):
    """Same-dog probabilities of cosine scores of a model's vectors (the gateway's SameDog, at its prior); None when
    those vectors have no calibration."""

    async def probabilities(self, model_id: str, scores: np.ndarray) -> np.ndarray | None:
        """Each pair's, by its score alone."""

    async def leading(self, model_id: str, scores: np.ndarray, others: np.ndarray) -> np.ndarray | None:
        """As a search's first result: capped by the lead over the best other dog's score (NaN: no other dog)."""

    async def judged_part(self, model_id: str) -> JudgedPart | None:
        """The part of the vectors the probabilities read (None: the whole vector)."""


class WatchNotFound(NotFound):
    """No watch with that id (or not the caller's)."""


class TooManyWatches(Conflict):
    """The key has as many watches as it may."""


class AlreadyWatching(Conflict):
    """The key watches this dog already, on the same conditions: a second watch would send every alert twice.
    `watch_id`: that watch (its secret lost: POST /v1/watches/{id}/secret makes another)."""

    def __init__(self, reason: str, *, watch_id: str | None = None, source: str | None = None) -> None:
        super().__init__(reason, source=source)
        self.watch_id = watch_id


class NotCalibrated(Conflict):
    """The collection's vectors have no same-dog calibration: a watch could not say how likely a match is."""


class InvalidWatch(InvalidInput):
    """A watch's conditions that cannot be used."""


@dataclass(frozen=True)
class _Group:
    """The watches of one vector model, as one matrix: rows of watch w are starts[w]:starts[w+1]."""

    watches: list[Watch]
    rows: np.ndarray  # (R, dim) float32
    starts: np.ndarray  # (W,) first row of each watch
    min_p: np.ndarray  # (W,)
    means: np.ndarray  # (W, dim) float32: the mean of each watch's photos, what a search of them by their mean asks

    def scores(self, watches: Sequence[int], vectors: np.ndarray, rule: Rule) -> np.ndarray:
        """The score of each unit row of `vectors` for the photos of the watch at the same place in `watches`, as
        a search of those photos scores it (multiquery.combined_scores), for many pairs at once."""
        if rule == "mean":
            return np.einsum("ij,ij->i", vectors, self.means[list(watches)])
        ends = np.append(self.starts[1:], len(self.rows))
        return np.array([(self.rows[self.starts[w]:ends[w]] @ v).max() for w, v in zip(watches, vectors, strict=True)],
                        dtype=np.float32)

    def judged_by(self, part: JudgedPart) -> _Group:
        """The same watches on the part of their vectors that verdicts read (unit rows; scores are its cosines)."""
        rows = part.queries(self.rows)
        sizes = np.diff(np.append(self.starts, len(rows)))
        return replace(self, rows=rows, means=(np.add.reduceat(rows, self.starts, axis=0) / sizes[:, None]
                                               ).astype(np.float32))


def _groups(watches: Sequence[Watch]) -> dict[str, _Group]:
    by_model: dict[str, list[Watch]] = {}
    for w in watches:
        by_model.setdefault(w.model, []).append(w)
    out = {}
    for model, ws in by_model.items():
        sizes = [len(w.vectors) for w in ws]
        out[model] = _Group(ws, np.concatenate([w.vectors for w in ws]).astype(np.float32),
                            np.cumsum([0, *sizes[:-1]]), np.array([w.min_probability for w in ws]),
                            np.stack([w.vectors.mean(axis=0) for w in ws]).astype(np.float32))
    return out


def body_of(match: NewMatch, matched_at: str) -> bytes:
    """A delivery's JSON: signed and sent as these exact bytes, the same on every attempt."""
    w = match.watch
    return json.dumps({"event": "watch.match", "watch": w.id, "watched_dog": w.dog_id,
                       "dog": {"id": match.dog_id, "payload": match.dog_payload},
                       "probability": round(match.probability, 4), "score": round(match.score, 6),
                       "matched_at": matched_at}, sort_keys=True, separators=(",", ":")).encode()


def ended_body_of(watch: Watch, ended_at: str) -> bytes:
    """The delivery of a watch's end (its dog deleted), as a match's: signed and sent as these exact bytes."""
    return json.dumps({"event": "watch.ended", "watch": watch.id, "watched_dog": watch.dog_id, "ended_at": ended_at,
                       "reason": "dog_deleted"}, sort_keys=True, separators=(",", ":")).encode()


class Watches:
    def __init__(self, store: WatchStore, index: Index, judge: Judge, *, rule: Rule = "mean",
                 max_per_owner: int = 100, allow_private: bool = False) -> None:
        """`rule`: how a watch's photos score a dog, as a search's several photos do (the gateway's query_combine);
        `allow_private`: webhooks may go to loopback and private addresses (tests, closed networks)."""
        self.store, self.index, self.judge, self.rule = store, index, judge, rule
        self.max_per_owner, self.allow_private = max_per_owner, allow_private
        self._version: int | None = None
        self._groups: dict[str, _Group] = {}
        self._on_part: dict[str, tuple[JudgedPart, _Group]] = {}  # by model: its group on the part verdicts read
        # told when new deliveries wait (matches recorded, watches ended): a deliverer waits
        self.on_match: Callable[[], None] | None = None

    # --- the watches -----------------------------------------------------------------------------------------

    async def create(self, *, owner: str | None, model: str, vectors: Sequence[Sequence[float]],
                     dog_id: str | None = None, min_probability: float = 0.5, statuses: Sequence[str] = (),
                     near: tuple[float, float] | None = None, radius_km: float | None = None,
                     webhook_url: str | None = None) -> tuple[Watch, str]:
        """A new watch and its secret (the key of its deliveries' signatures, shown once)."""
        if not 0 < min_probability < 1:
            raise InvalidWatch(f"min_probability: above 0 and below 1, not {min_probability:g}")
        if radius_km is not None and (near is None or not (math.isfinite(radius_km)
                                                          and 0 < radius_km <= MAX_RADIUS_KM)):
            raise InvalidWatch(f"radius_km needs near, and is above 0 and at most {MAX_RADIUS_KM:g}")
        if await self.judge.probabilities(model, np.zeros(1)) is None:
            raise NotCalibrated(f"the collection's vectors ({model}) have no same-dog calibration, so a watch could "
                                "not tell how likely a new dog is the same: `dogsearch train calibration` makes one")
        if webhook_url:
            await asyncio.to_thread(resolve, webhook_url, self.allow_private)
        radius_km = radius_km if near else None
        if dog_id is not None:  # a request sent again (its answer lost), or a second click
            same = (dog_id, float(min_probability), tuple(sorted(statuses)), near, radius_km, webhook_url or None)
            for old in await self.list(owner):
                if old.ended_at is None and (old.dog_id, old.min_probability, tuple(sorted(old.statuses)), old.near,
                                             old.radius_km, old.webhook_url) == same:
                    raise AlreadyWatching(f"this key watches dog {dog_id} on these conditions already: watch "
                                          f"{old.id} (its secret lost: POST /v1/watches/{old.id}/secret makes a new "
                                          "one)", watch_id=old.id)
        matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        watch = Watch(str(uuid.uuid4()), owner, dog_id, model, matrix, float(min_probability), tuple(statuses),
                      near, radius_km, webhook_url or None, now_iso())
        secret = _new_secret()
        if not await asyncio.to_thread(self.store.create, watch, secret, self.max_per_owner):
            raise TooManyWatches(f"this key has {self.max_per_owner} open watches, the most it may: delete one first")
        return watch, secret

    async def new_secret(self, watch: Watch) -> str:
        """A new secret for the watch's deliveries, in place of the old one (lost, or leaked): every attempt from now
        on is signed with it, the retries of earlier matches too, also those of an ended watch and of its end; what was
        sent stays signed as it was."""
        secret = _new_secret()
        if not await asyncio.to_thread(self.store.set_secret, watch.id, secret):
            raise WatchNotFound(f"no watch {watch.id}")  # deleted meanwhile
        return secret

    async def get(self, watch_id: str, may_see: Callable[[str | None], bool]) -> Watch:
        """The watch, when `may_see(its owner)`; WatchNotFound otherwise (another's watch is not there for you)."""
        watch = await asyncio.to_thread(self.store.get, watch_id)
        if watch is None or not may_see(watch.owner):
            raise WatchNotFound(f"no watch {watch_id}")
        return watch

    async def list(self, owner: str | None, everyone: bool = False) -> list[Watch]:
        return await asyncio.to_thread(self.store.list, owner, everyone)

    async def delete(self, watch: Watch) -> None:
        await asyncio.to_thread(self.store.delete, watch.id)

    async def dog_deleted(self, dog_id: str) -> int:
        """A stored dog is gone (deleted through the API, or dropped by `dogsearch check`): the watches made from it
        end, each webhook told (`watch.ended`), and it leaves every inbox (WatchStore.dog_deleted). Every process that
        checks reloads its watches, so a check queued before, or running, records nothing for them. How many
        ended."""
        ended = await asyncio.to_thread(self.store.dog_deleted, dog_id, ended_body_of)
        if ended:
            log.info("dog %s deleted: the watches made from it ended", dog_id)
            if self.on_match is not None:
                self.on_match()
        return ended

    async def matches(self, watch: Watch, stored: Callable[[Iterable[str]], Awaitable[set[str]]],
                      limit: int = 100) -> list[dict[str, Any]]:
        """The inbox, newest first, without the dogs no longer stored (`stored`: which of some dog ids are): one
        deleted where the watches are not told (an entry dropped by `dogsearch check`), before they were, or while a
        check that matched it ran."""
        found = await asyncio.to_thread(self.store.matches, watch.id, limit)
        if not found:
            return found
        alive = await stored([m["dog_id"] for m in found])
        return [m for m in found if m["dog_id"] in alive]

    # --- checking new dogs -----------------------------------------------------------------------------------

    async def check_again(self, given_up: Sequence[dict[str, Any]]) -> int:
        """Runs checks that were given up (WatchStore.given_up_checks) again, here, forgetting each once it ran
        (none is forgotten that did not); how many ran."""
        for check in given_up:
            await self.check(check["entries"])
            await asyncio.to_thread(self.store.forget_check, check["key"])
        return len(given_up)

    async def _current(self) -> dict[str, _Group]:
        version = await asyncio.to_thread(self.store.version)
        if version != self._version:
            watches = await asyncio.to_thread(self.store.open_watches)
            self._groups, self._version = await asyncio.to_thread(_groups, watches), version
            self._on_part = {}
        return self._groups

    def _judged_by(self, model: str, group: _Group, part: JudgedPart) -> _Group:
        """The group on the part of its vectors that verdicts read, made once while the watches and the part stay."""
        known = self._on_part.get(model)
        if known is None or known[0] != part:
            known = self._on_part[model] = (part, group.judged_by(part))
        return known[1]

    async def check(self, entry_ids: Sequence[str]) -> int:
        """Checks newly stored entries against the open watches and records each new match (with its delivery).
        Safe to run again for the same entries: a match is recorded once. Returns how many matches were new."""
        groups = await self._current()
        if not groups or not entry_ids:
            return 0
        try:
            points = list((await self.index.lookup(list(entry_ids), with_vector=True)).values())
        except CollectionMissing:
            return 0
        by_model: dict[str, list[dict[str, Any]]] = {}
        for p in points:
            if p.get("vector") is not None and p["payload"].get("model") in groups:
                by_model.setdefault(p["payload"]["model"], []).append(p)
        found: list[NewMatch] = []
        learnt: list[tuple[str, str, float]] = []
        forgotten: list[tuple[str, str]] = []
        for model, pts in by_model.items():
            seen = await self._matches(model, groups[model], pts)
            found, learnt, forgotten = found + seen[0], learnt + seen[1], forgotten + seen[2]
        new = await asyncio.to_thread(self.store.record, found, body_of)
        await asyncio.to_thread(self.store.learn_rivals, learnt, forgotten)
        if new and self.on_match is not None:
            self.on_match()
        return new

    async def _matches(self, model: str, group: _Group, points: list[dict[str, Any]]
                       ) -> tuple[list[NewMatch], list[tuple[str, str, float]], list[tuple[str, str]]]:
        """The batch's new matches of the group's watches; and the known rivals learnt (watch, entry, score) and to
        forget (watch, entry)."""
        new = np.asarray([p["vector"] for p in points], dtype=np.float32)
        new /= np.linalg.norm(new, axis=1, keepdims=True)
        part = await self.judge.judged_part(model)
        if part is not None:  # every score below is then the part's (the search ranks by the whole vector)
            new, group = part.queries(new), self._judged_by(model, group, part)
        best = np.maximum.reduceat(new @ group.rows.T, group.starts, axis=1)  # (points, watches): best photo each
        probabilities = await self.judge.probabilities(model, best.ravel())
        if probabilities is None:
            log.warning("watches of %s vectors skipped: they have no calibration now", model)
            return [], [], []
        probabilities = np.asarray(probabilities).reshape(best.shape)
        passing: dict[int, dict[str, int]] = {}  # watch -> new dog -> its entry in the batch the watch scores best
        for i, w in np.argwhere(probabilities >= group.min_p[None, :]):
            watch, point = group.watches[w], points[i]
            if _fits(watch, point["id"], point["payload"]):
                kept = passing.setdefault(int(w), {})
                dog = point["payload"].get("dog_id", point["id"])
                if dog not in kept or best[i, w] > best[kept[dog], w]:
                    kept[dog] = int(i)
        if not passing:
            return [], [], []
        cut = _after(max(str(p["payload"].get("created_at", "")) for p in points))
        # watch -> its passing (dog, entry in the batch, score as a search with the watch's photos scores it)
        flat = [(w, dog, i) for w, dogs in passing.items() for dog, i in dogs.items()]
        scores = group.scores([w for w, _, _ in flat], new[[i for _, _, i in flat]], self.rule).tolist()
        pairs: dict[int, list[tuple[str, int, float]]] = {}
        for (w, dog, i), score in zip(flat, scores, strict=True):
            pairs.setdefault(w, []).append((dog, i, score))
        # The dogs a watch matched are no rivals of a new one: another sighting of a lost dog is as like the watch
        # as the first one was, and would lead it by nothing (a second report, with where the dog is now, never
        # alerted).
        matched = await asyncio.to_thread(self.store.matched_dogs, [group.watches[w].id for w in pairs],
                                          MATCHED_NOT_RIVALS)
        # A known rival bounds nothing where the ranking and the verdict read different scores: the search's true
        # rival, first by the whole vector, may score below it on the part. Every pair is then asked about.
        rivals, forgotten = ({}, []) if part is not None else await self._known_rivals(group, list(pairs), cut,
                                                                                       matched)
        hopeless = await self._hopeless(model, group, pairs, rivals)
        if hopeless is None:
            return [], [], []
        left = {w: kept for w, ps in pairs.items() if (kept := [p for p in ps if (w, p[0]) not in hopeless])}
        at_once = asyncio.Semaphore(QUERIES_AT_ONCE)
        judged = dict(zip(left, await asyncio.gather(*(
            self._judged(model, group.watches[w], ps, points, cut, at_once, part,
                         matched.get(group.watches[w].id, [])) for w, ps in left.items())), strict=True))
        found = [m for ms, _ in judged.values() for m in ms]
        if part is not None:  # known rivals are not read under a part (above): none to learn
            return found, [], []
        # what is learnt: the best dog each lead query found, or where none ran the best passing dog of the batch (it
        # passed the watch's conditions, and the product scored it); kept where it beats the known rival
        learnt = []
        for w, ps in pairs.items():
            _, i, score = max(ps, key=lambda p: p[2])
            entry, top = points[i]["id"], judged.get(w, ([], None))[1]
            if top is not None and top.verdict_score > score:
                entry, score = top.dog.entry_id, top.verdict_score
            learnt.append((group.watches[w].id, entry, float(score)))
        return found, learnt, forgotten

    async def _known_rivals(self, group: _Group, watches: list[int], cut: str | None, matched: dict[str, list[str]]
                            ) -> tuple[dict[int, tuple[str, float]], list[tuple[str, str]]]:
        """The watches' known rivals that their searches would show beside this batch's dogs, {watch: (their dog,
        their score now)}: still stored, of the watch's vectors, statuses and place, neither the watched dog nor one
        it `matched`, and stored no later than the batch (a check run again for an older batch ignores one stored
        after it). One lookup for all of them (of LOOKUP_AT_ONCE ids at most). Also those to forget, (watch id,
        entry): gone, matched since, or no longer shown by the watch's search."""
        known = await asyncio.to_thread(self.store.rivals, [group.watches[w].id for w in watches])
        if not known:
            return {}, []
        entries = sorted({entry for entry, _ in known.values()})
        stored: dict[str, dict[str, Any]] = {}
        for i in range(0, len(entries), LOOKUP_AT_ONCE):
            stored |= await self.index.lookup(entries[i:i + LOOKUP_AT_ONCE], with_vector=True)
        vectors = {entry: np.asarray(p["vector"], dtype=np.float32) for entry, p in stored.items()
                   if p.get("vector") is not None}
        shown: list[tuple[int, str, np.ndarray]] = []  # (watch, the rival's dog, its vector)
        forgotten: list[tuple[str, str]] = []
        for w in watches:
            watch = group.watches[w]
            if watch.id not in known:
                continue
            entry = known[watch.id][0]
            point = stored.get(entry)
            if point is None or entry not in vectors or not _shown(watch, entry, point["payload"]) or \
                    point["payload"].get("dog_id", entry) in matched.get(watch.id, ()):
                forgotten.append((watch.id, entry))
            elif _stored_before(point["payload"], cut):
                shown.append((w, point["payload"].get("dog_id", entry), vectors[entry]))
        if not shown:
            return {}, forgotten
        rows = np.stack([v for _, _, v in shown])
        scores = group.scores([w for w, _, _ in shown], rows / np.linalg.norm(rows, axis=1, keepdims=True), self.rule)
        usable = {w: (dog, float(score)) for (w, dog, _), score in zip(shown, scores, strict=True)}
        return usable, forgotten

    async def _hopeless(self, model: str, group: _Group, pairs: dict[int, list[tuple[str, int, float]]],
                        rivals: dict[int, tuple[str, float]]) -> set[tuple[int, str]] | None:
        """The (watch, new dog) pairs that cannot alert: the search would show the known rival (another dog) beside
        the new dog, so its true rival scores at least as high, and the probability capped by the lead over the
        known one is already below min_probability. None: the vectors lost their calibration."""
        bounded = [(w, dog, score) for w, (rival, _) in rivals.items() for dog, _, score in pairs[w] if dog != rival]
        if not bounded:
            return set()
        bounds = await self.judge.leading(model, np.array([s for _, _, s in bounded]),
                                          np.array([rivals[w][1] - RIVAL_MARGIN for w, _, _ in bounded]))
        if bounds is None:
            return None
        return {(w, dog) for (w, dog, _), bound in zip(bounded, bounds, strict=True)
                if bound < group.watches[w].min_probability}

    async def _judged(self, model: str, watch: Watch, pairs: list[tuple[str, int, float]],
                      points: list[dict[str, Any]], cut: str | None, at_once: asyncio.Semaphore,
                      part: JudgedPart | None = None, matched: Sequence[str] = ()
                      ) -> tuple[list[NewMatch], Match | None]:
        """New dogs (dog, its entry in the batch, its score) that passed a watch's first cut, judged as a search with
        the watch's photos would judge them: each by its score, capped by its lead over the best other dog that
        search shows (one query; of SHOWN dogs where the verdict reads a part), the dogs the watch `matched` left
        out. Also the best dog the query found.
        The first SHOWN dogs by the whole vector, not re-ranked (judged.py): re-ranking them costs a query of
        `depth` dogs more, 3.5 times the ranking (bench ranking), and on held-out watches it alerted no better
        (docs/embedder-eval.md, "The breed part capped")."""
        async with at_once:
            nearest = await nearest_dogs(self.index, watch.vectors, 2 if part is None else SHOWN,
                                         _others(watch, cut, matched),
                                         self.rule, judged=None if part is None else replace(part, rerank=None))
        others = np.array([max((m.verdict_score for m in nearest if m.dog.id != dog), default=np.nan)
                           for dog, _, _ in pairs])
        probabilities = await self.judge.leading(model, np.array([s for _, _, s in pairs]), others)
        top = nearest[0] if nearest else None
        if probabilities is None:
            return [], top
        return [NewMatch(watch, dog, s, float(p), public(points[i]["payload"]))
                for (dog, i, s), p in zip(pairs, probabilities, strict=True) if p >= watch.min_probability], top


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _after(created_at: str) -> str | None:
    """The first second after a stored time (RFC 3339, seconds): entries stored from then on are later than it."""
    try:
        return (datetime.fromisoformat(created_at) + timedelta(seconds=1)).isoformat(timespec="seconds")
    except ValueError:
        return None


def _others(watch: Watch, cut: str | None, matched: Sequence[str] = ()) -> dict[str, Any]:
    """The dogs a search with the watch's photos compares a new dog with: the watch's statuses and place, neither
    the watched dog, nor one it `matched`, nor anything stored after the batch (an entry without a time, from before
    times were kept, stays)."""
    flt: dict[str, Any] = ReportQuery(Place(*watch.near) if watch.near else None, watch.radius_km,
                                      statuses=watch.statuses).filter()
    left_out: dict[str, Any] = {}
    if dogs := [d for d in (watch.dog_id, *matched) if d is not None]:
        left_out["dog_id"] = dogs
    if cut is not None:
        left_out["created_at"] = {"$gte": cut}
    return {**flt, "$not": left_out} if left_out else flt


def _stored_before(payload: dict[str, Any], cut: str | None) -> bool:
    """Whether an entry is among the dogs stored no later than the batch (`_others`' time condition)."""
    stored = payload.get("created_at")
    if cut is None or stored is None:
        return True
    try:
        return datetime.fromisoformat(str(stored)) < datetime.fromisoformat(cut)
    except (TypeError, ValueError):  # not a time, or a time without its zone: not sure, so not used
        return False


def _shown(watch: Watch, entry_id: str, payload: dict[str, Any]) -> bool:
    """Whether a stored entry is one the watch's search shows (`_others`' conditions but the time): of its vectors,
    and its conditions well within its radius (a margin for the engine's own arithmetic)."""
    return payload.get("model") == watch.model and _meets(watch, entry_id, payload, margin_km=PLACE_MARGIN_KM)


def _fits(watch: Watch, entry_id: str, payload: dict[str, Any]) -> bool:
    """The watch's conditions on a new dog besides its likeness."""
    if str(payload.get("created_at", "")) < watch.created_at:
        return False  # stored before the watch: not new to it
    return _meets(watch, entry_id, payload)


def _meets(watch: Watch, entry_id: str, payload: dict[str, Any], margin_km: float = 0.0) -> bool:
    """Not the watched dog (its own photos), of the watch's statuses, within its radius less `margin_km`."""
    if payload.get("dog_id", entry_id) == watch.dog_id:
        return False
    if watch.statuses and payload.get("status") not in watch.statuses:
        return False
    if watch.radius_km is not None and watch.near is not None:
        seen = stored_place(payload)
        if seen is None or distance_km(Place(*watch.near), seen) > watch.radius_km - margin_km:
            return False
    return True
