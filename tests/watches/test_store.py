"""The watch store's lifecycle: a watch whose dog is deleted ends (no match is recorded for it after, by any check,
also one that was running), keeps its inbox, has its end delivered to its webhook, is read with that delivery's
state and no longer counts toward its key's limit (its ended ones bounded apart); a deleted dog leaves every inbox
with its unsent deliveries; a new secret signs the next attempts; a given-up check keeps why; a file from before these
columns opens with them; only the gateway makes the store."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from dogsearch.watches import store as store_module
from dogsearch.watches.store import NewMatch, StoreMissing, Watch, WatchStore


def watch(wid: str, dog_id: str | None, url: str | None = "https://example.org/hook") -> Watch:
    return Watch(wid, "alice", dog_id, "m", np.eye(1, 4, dtype=np.float32), 0.5, ("found",), None, None, url,
                 "2026-12-01T00:00:00+00:00")


def match(w: Watch, dog: str) -> NewMatch:
    return NewMatch(w, dog, 0.9, 0.8, {"status": "found"})


def body(m: NewMatch, at: str) -> bytes:
    return f"{m.watch.id}:{m.dog_id}".encode()


def ended(w: Watch, at: str) -> bytes:
    return f"{w.id} ended {at}".encode()


@pytest.fixture
def store(tmp_path):
    s = WatchStore(tmp_path / "watches.sqlite3")
    yield s
    s.close()


def test_a_watch_whose_dog_is_deleted_ends_and_keeps_its_inbox(store):
    of_rex, from_photos = watch("w1", "rex"), watch("w2", None)
    store.create(of_rex, "s1")
    store.create(from_photos, "s2")
    assert store.record([match(of_rex, "d1"), match(from_photos, "d1")], body) == 2
    version = store.version()

    assert store.dog_deleted("rex", ended) == 1
    assert store.version() != version  # every checking process reloads its watches
    assert store.get("w1").ended_at is not None and store.get("w2").ended_at is None
    assert [w.id for w in store.open_watches()] == ["w2"]
    assert [m["dog_id"] for m in store.matches("w1", 10)] == ["d1"]  # its inbox stays
    # a check that loaded the watch before the dog was deleted records nothing for it when it ends
    assert store.record([match(of_rex, "d2"), match(from_photos, "d2")], body) == 1
    assert [m["dog_id"] for m in store.matches("w1", 10)] == ["d1"]
    assert store.dog_deleted("rex", ended) == 0  # once


def test_a_deleted_dog_leaves_every_inbox_with_its_unsent_deliveries(store):
    a, b = watch("w1", "rex"), watch("w2", None)
    store.create(a, "s1")
    store.create(b, "s2")
    store.record([match(a, "d1"), match(b, "d1"), match(b, "d2")], body)
    claimed = store.claim("w2", "d1", 30)
    store.finish(claimed, 500, "HTTP 500", False, 0.0)  # tried once, to be retried
    assert store.dog_deleted("d1", ended) == 0  # no watch was made from it
    assert [m["dog_id"] for m in store.matches("w1", 10)] == []
    assert [m["dog_id"] for m in store.matches("w2", 10)] == ["d2"]
    assert store.due(10) == [("w2", "d2")]
    assert store.get("w1").ended_at is None


def test_a_watch_that_ends_has_its_end_delivered_once_to_its_webhook(store):
    """As a match's: an outbox row written with the end, signed with the watch's secret and retried; the deleted dog's
    own deliveries to other watches go, the end stays, also when the same dog (stored again) is deleted again."""
    hooked, quiet, other = watch("w1", "rex"), watch("w2", "rex", url=None), watch("w3", None)
    for w, secret in ((hooked, "s1"), (quiet, "s2"), (other, "s3")):
        store.create(w, secret)
    store.record([match(other, "rex")], body)  # rex matched another watch
    assert store.dog_deleted("rex", ended) == 2
    assert store.due(10) == [("w1", "rex")]  # no webhook, no delivery; rex's match of w3 gone with it
    claimed = store.claim("w1", "rex", 30)
    assert claimed.body == f"w1 ended {store.get('w1').ended_at}".encode() and claimed.secret == "s1"
    store.finish(claimed, 500, "HTTP 500", False, 0.0)  # to be retried
    assert store.dog_deleted("rex", ended) == 0
    assert store.due(10) == [("w1", "rex")] and store.claim("w1", "rex", 30).attempt == 2


def test_an_ended_watch_is_read_with_the_delivery_of_its_end(store):
    """As a match's delivery is read in the inbox: its state, attempts and each attempt; an open watch, or one without
    a webhook, has none, and a match's delivery is not taken for an end."""
    hooked, quiet = watch("w1", "rex"), watch("w2", "rex", url=None)
    store.create(hooked, "s1")
    store.create(quiet, "s2")
    store.record([match(hooked, "d1")], body)
    assert store.get("w1").ended_delivery is None
    store.dog_deleted("rex", ended)
    assert store.get("w1").ended_delivery == {"state": "pending", "attempts": 0, "last_status": None,
                                              "last_error": None, "delivered_at": None, "history": []}
    assert store.get("w2").ended_delivery is None
    store.finish(store.claim("w1", "rex", 30), 500, "HTTP 500", False, None)  # its last attempt
    end = store.get("w1").ended_delivery
    assert (end["state"], end["attempts"], end["last_status"], end["last_error"]) == ("failed", 1, 500, "HTTP 500")
    assert [(a["n"], a["status"], a["error"]) for a in end["history"]] == [(1, 500, "HTTP 500")]
    assert [w.ended_delivery for w in store.list("alice")] == [end, None]
    assert store.matches("w1", 10)[0]["delivery"]["state"] == "pending"  # the match's own, still to be sent


def test_ended_watches_leave_room_for_new_ones_and_are_kept_as_many_again(store):
    """A key whose watched dogs were deleted may watch again; its ended watches do not pile up without bound (make a
    watch, delete its dog, again): as many as it may have open are kept, the oldest ended deleted, inbox and all, when
    it makes one past that."""
    assert store.create(watch("w0", "dog0"), "s", 2) and store.create(watch("w1", "dog1"), "s", 2)
    assert not store.create(watch("w2", "dog2"), "s", 2)
    store.record([match(store.get("w0"), "found")], body)
    assert store.dog_deleted("dog0", ended) == 1
    assert store.create(watch("w2", "dog2"), "s", 2)  # the ended one does not count
    assert not store.create(watch("w3", "dog3"), "s", 2)
    assert store.dog_deleted("dog1", ended) == 1 and store.dog_deleted("dog2", ended) == 1
    assert [w.id for w in store.list("alice")] == ["w0", "w1", "w2"]  # three ended: kept until a watch is made
    assert store.create(watch("w3", "dog3"), "s", 2)
    assert [w.id for w in store.list("alice")] == ["w1", "w2", "w3"]
    assert store.matches("w0", 10) == [] and ("w0", "dog0") not in store.due(10)


def test_a_new_secret_signs_the_next_attempts(store):
    w = watch("w1", None)
    store.create(w, "old")
    store.record([match(w, "d1"), match(w, "d2")], body)
    assert store.claim("w1", "d1", 30).secret == "old"
    assert store.set_secret("w1", "new") and not store.set_secret("nope", "new")
    assert store.claim("w1", "d2", 30).secret == "new"


def test_a_given_up_check_keeps_why_and_is_forgotten_once_it_ran(store):
    store.deliver_check("k1", ["e1", "e2"])
    store.give_up_check("k1", "its search service was down for 86400 s")
    store.deliver_check("k2", ["e3"])
    store.check_ran("k2")
    [given_up] = store.given_up_checks()
    assert given_up["entries"] == ["e1", "e2"] and given_up["reason"] == "its search service was down for 86400 s"
    assert given_up["gave_up_at"]
    store.forget_check("k1")
    assert store.given_up_checks() == []


def test_a_file_from_before_the_added_columns_opens_with_them(tmp_path):
    path = tmp_path / "watches.sqlite3"
    with sqlite3.connect(path) as db:  # as a release before watches ended and checks kept why
        db.executescript(store_module._SCHEMA)
        db.execute("INSERT INTO watches (id, owner, secret, dog_id, model, vectors, dim, min_probability, statuses, "
                   "created_at) VALUES ('w1', 'alice', 's', 'rex', 'm', ?, 4, 0.5, '[]', '2026-12-01T00:00:00+00:00')",
                   (np.eye(1, 4, dtype=np.float32).tobytes(),))
        db.execute("INSERT INTO checks (key, deliveries, entries, gave_up_at) VALUES ('k', 3, '[\"e\"]', 'then')")
    store = WatchStore(path)
    second = WatchStore(path)  # another process opening it after: nothing to add
    try:
        assert store.get("w1").ended_at is None
        assert store.given_up_checks()[0]["reason"] is None
        assert store.dog_deleted("rex", ended) == 1 and second.get("w1").ended_at is not None
    finally:
        store.close()
        second.close()


def test_only_a_store_a_gateway_made_counts_as_one_and_looking_makes_none(tmp_path):
    """What a worker asks before it opens the store (it never makes one): no file, an empty one, another kind of
    file, or a store a worker made before workers stopped making them (its schema without the mark) are refused,
    and asking neither makes nor changes a file; a WatchStore (the gateway's) marks the file it opens, an older
    gateway's store too."""
    missing = tmp_path / "nowhere" / "watches.sqlite3"
    assert store_module.not_a_store(missing) == f"no watch store at {missing}"
    assert not missing.parent.exists()
    empty, other = tmp_path / "empty.sqlite3", tmp_path / "other.sqlite3"
    empty.touch()
    other.write_text("not a database" * 100)
    assert "is not a watch store a gateway made" in store_module.not_a_store(empty) and empty.stat().st_size == 0
    assert "is not a watch store a gateway made" in store_module.not_a_store(other)
    older = tmp_path / "older.sqlite3"
    with sqlite3.connect(older) as db:  # as a worker (or a gateway) of a release before the mark made it
        db.executescript(store_module._SCHEMA)
    db.close()
    assert "a worker made it" in store_module.not_a_store(older)
    assert "a worker made it" in store_module.not_a_store(older)  # looking wrote nothing
    with pytest.raises(StoreMissing, match="a worker made it"):
        WatchStore(older, make=False)  # as a worker, or `dogsearch check`, opens it: refused, and left unmarked
    assert "a worker made it" in store_module.not_a_store(older)
    WatchStore(older).close()  # the gateway opens it
    assert store_module.not_a_store(older) is None
    WatchStore(older, make=False).close()
    with pytest.raises(StoreMissing, match="no watch store at"):
        WatchStore(missing, make=False)
    assert not missing.parent.exists()  # nothing made
    made = WatchStore(tmp_path / "made.sqlite3")
    try:
        assert store_module.not_a_store(tmp_path / "made.sqlite3") is None
    finally:
        made.close()
