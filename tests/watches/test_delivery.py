"""Deliveries from the store's outbox: a match is recorded (and queued for its webhook) once however often it is
checked; a send is taken by one sender at a time; failures back off and stop after the bounded attempts, each
recorded; a name that resolves to a private address at delivery time (DNS rebinding) is not connected to."""
from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest

from dogsearch.watches.delivery import Deliverer, signature
from dogsearch.watches.store import NewMatch, Watch, WatchStore, now_iso
from dogsearch.watches.watches import body_of


@pytest.fixture
def store(tmp_path):
    s = WatchStore(tmp_path / "w" / "watches.sqlite3")
    yield s
    s.close()


def _watch(store: WatchStore, url: str | None = "http://hooks.example.org/x") -> Watch:
    watch = Watch("00000000-0000-0000-0000-0000000000aa", "alice", None, "m", np.eye(1, 4, dtype=np.float32), 0.5, (),
                  None, None, url, now_iso())
    assert store.create(watch, "whsec_test")
    return watch


def _match(watch: Watch, dog: str = "00000000-0000-0000-0000-0000000000d1") -> NewMatch:
    return NewMatch(watch, dog, 0.97, 0.9, {"status": "found"})


class FakeSend:
    def __init__(self, *statuses: int) -> None:
        self.statuses, self.calls = list(statuses), []

    async def __call__(self, target, body, headers, timeout_s):
        self.calls.append((target, body, dict(headers)))
        return (self.statuses.pop(0) if self.statuses else 200), None


def test_a_match_is_recorded_once_and_a_second_store_sees_it(store, tmp_path):
    watch = _watch(store)
    assert store.record([_match(watch)], body_of) == 1
    other = WatchStore(tmp_path / "w" / "watches.sqlite3")  # another process's connection
    try:
        assert other.record([_match(watch)], body_of) == 0
        assert len(other.due(10)) == 1 and len(other.matches(watch.id, 10)) == 1
    finally:
        other.close()


def test_a_deleted_watch_gets_no_match(store):
    watch = _watch(store)
    assert store.delete(watch.id)
    assert store.record([_match(watch)], body_of) == 0 and store.due(10) == []


def test_only_one_sender_takes_a_delivery(store):
    watch = _watch(store)
    store.record([_match(watch)], body_of)
    (key,) = store.due(10)
    first = store.claim(*key, lease_s=60)
    assert first is not None and first.attempt == 1
    assert store.claim(*key, lease_s=60) is None  # leased
    assert store.due(10) == []


def test_a_sender_that_died_mid_send_leaves_the_delivery_to_another_after_its_lease(store):
    watch = _watch(store)
    store.record([_match(watch)], body_of)
    (key,) = store.due(10)
    assert store.claim(*key, lease_s=0.0) is not None  # taken, then never finished
    again = store.claim(*key, lease_s=60)
    assert again is not None and again.attempt == 2  # the lost attempt counts


async def test_failures_back_off_and_stop_after_max_attempts(store, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(2, 1, 6, "", ("93.184.215.14", port))])
    watch = _watch(store)
    store.record([_match(watch)], body_of)
    send = FakeSend(500, 503, 500)
    deliverer = Deliverer(store, send, max_attempts=3, backoff_s=0.05)
    for _ in range(40):
        await deliverer.deliver_due()
        await asyncio.sleep(0.02)
    assert len(send.calls) == 3
    (m,) = store.matches(watch.id, 10)
    assert m["delivery"]["state"] == "failed" and m["delivery"]["attempts"] == 3
    assert [a["status"] for a in m["delivery"]["history"]] == [500, 503, 500]
    target, body, headers = send.calls[0]
    assert target.address == "93.184.215.14" and target.host == "hooks.example.org"
    assert headers["X-Dogsearch-Signature"] == signature("whsec_test", body)
    assert deliverer.retry_at(1) is not None and deliverer.retry_at(3) is None


async def test_a_name_rebound_to_loopback_is_not_connected_to(store, monkeypatch):
    watch = _watch(store)  # made while hooks.example.org was public
    store.record([_match(watch)], body_of)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [(2, 1, 6, "", ("127.0.0.1", port))])
    send = FakeSend()
    await Deliverer(store, send, max_attempts=1).deliver_due()
    assert send.calls == []
    (m,) = store.matches(watch.id, 10)
    (attempt,) = m["delivery"]["history"]
    assert attempt["status"] is None and "loopback" in attempt["error"]
    assert m["delivery"]["state"] == "failed"


async def test_the_sender_connects_to_the_checked_address_and_follows_no_redirect():
    from dogsearch.services.gateway.webhooks import WebhookSender
    from dogsearch.watches.targets import Target
    from tests.watches.receiver import Receiver

    with Receiver(statuses=(302, 200)) as receiver:
        port = receiver.server.server_address[1]
        # the name is never looked up again: the connection goes to the address the check resolved
        target = Target(f"http://hooks.example.org:{port}/hook", "http", "hooks.example.org", port, "127.0.0.1")
        sender = WebhookSender(max_response_bytes=16)
        try:
            assert await sender(target, b'{"a":1}', {"X-Test": "1"}, 5.0) == (302, "HTTP 302: redirects are not "
                                                                                   "followed")
            assert await sender(target, b'{"a":1}', {}, 5.0) == (200, None)
        finally:
            await sender.aclose()
    (headers, body), _ = receiver.received
    assert headers["host"] == f"hooks.example.org:{port}" and body == b'{"a":1}' and headers["x-test"] == "1"
