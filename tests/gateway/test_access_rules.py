"""The gateway's access rules as functions: the scope each request needs, who the client is behind proxies, and
the rate limiter's buckets (in memory, and shared through Redis)."""
from __future__ import annotations

import logging
import uuid
from ipaddress import ip_network

import pytest

from dogsearch.services.gateway.security import RateLimit, RedisRateLimit, client_address, needed_scope
from tests.jobs.servers import REDIS_URL, redis_db


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/v1/dogs", "search"),
    ("GET", "/v1/dogs/x/image", "search"),
    ("GET", "/v1/dogs/x/similar", "search"),
    ("POST", "/v1/search", "search"),
    ("POST", "/v1/pose", "search"),
    ("POST", "/v1/detect", "search"),
    ("POST", "/v1/preview", "search"),
    ("POST", "/v1/taken", "search"),
    ("POST", "/v1/dogs", "write"),
    ("PATCH", "/v1/dogs/x", "write"),  # and the dog's owner, or admin
    ("DELETE", "/v1/dogs/x", "write"),  # and the dog's owner, or admin (routers/dogs.py)
    ("POST", "/v1/dogs/x/photos", "write"),  # and the dog's owner, or admin
    ("DELETE", "/v1/dogs/x/photos/y", "write"),  # and the dog's owner, or admin
    ("PUT", "/v1/dogs/x/photos/y/box", "write"),  # and the dog's owner, or admin
    ("GET", "/v1/dogs/x/photos/y/image", "search"),
    ("GET", "/v1/jobs", "write"),  # a write key's own jobs (routers/jobs.py)
    ("POST", "/v1/jobs/index/upload", "write"),
    ("POST", "/v1/watches", "write"),
    ("GET", "/v1/watches", "search"),  # a key's own watches (routers/watches.py): none without write
    ("DELETE", "/v1/watches/x", "write"),  # and the watch's owner, or admin
    ("POST", "/v1/watches/x/secret", "write"),  # and the watch's owner, or admin
    ("GET", "/metrics", "admin"),
    ("PUT", "/internal/search/v1/collection", "admin"),
    ("GET", "/internal/embedder/metrics", "admin"),
    ("GET", "/v1/me", None),
    ("GET", "/healthz", None),
    ("GET", "/readyz", None),
    ("GET", "/", None),  # the web UI
    ("GET", "/assets/index.js", None),
])
def test_each_path_needs_its_scope(method, path, scope):
    assert needed_scope(method, path) == scope


PROXIES = [ip_network("10.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("203.0.113.9", ["198.51.100.1"], "203.0.113.9"),  # not a proxy: its header is the client's own words
    ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["6.6.6.6, 198.51.100.1, 10.0.0.3"], "198.51.100.1"),  # the leftmost is made up by the client
    ("10.0.0.2", ["6.6.6.6", "198.51.100.1"], "198.51.100.1"),  # two headers: one list
    ("10.0.0.2", [], "10.0.0.2"),
    ("10.0.0.2", ["10.0.0.5"], "10.0.0.5"),  # only proxies: the farthest
    ("::1", ["2001:db8::1"], "2001:db8::1"),
    ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),
    (None, [], "unknown"),
])
def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy(peer, forwarded, client):
    assert client_address(peer, forwarded, PROXIES) == client


def test_without_trusted_proxies_x_forwarded_for_is_ignored():
    assert client_address("203.0.113.9", ["198.51.100.1"], []) == "203.0.113.9"


async def test_the_bucket_lets_a_burst_through_then_refills():
    limit = RateLimit(per_minute=60, burst=3)
    assert [await limit.take("a") for _ in range(3)] == [0, 0, 0]
    assert 0 < await limit.take("a") <= 1
    assert await limit.take("b") == 0  # a bucket each
    assert await limit.take("c", cost=5) == 0 and await limit.take("c") > 0  # a failure empties it


async def test_replicas_share_their_counts_through_redis():
    prefix = f"dogsearch-test:{uuid.uuid4()}:"
    one, two = (RedisRateLimit(REDIS_URL, per_minute=60, burst=4, prefix=prefix) for _ in range(2))
    try:
        waits = [await (one if n % 2 else two).take("key:alice") for n in range(5)]
        assert waits[:4] == [0, 0, 0, 0] and waits[4] > 0
        assert await one.take("key:bob") == 0
    finally:
        for limiter in (one, two):
            await limiter.aclose()
        client = redis_db()
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        client.close()


async def test_without_redis_the_limiter_counts_in_memory_and_warns(caplog, monkeypatch):
    # An in-process Celery worker started by an earlier test configures logging and disables loggers made before it.
    monkeypatch.setattr(logging.getLogger("dogsearch.access"), "disabled", False)
    caplog.set_level(logging.WARNING, logger="dogsearch.access")
    limit = RedisRateLimit("redis://127.0.0.1:1/0", per_minute=60, burst=2)  # nothing listens on port 1
    waits = [await limit.take("addr:1.2.3.4") for _ in range(3)]
    assert waits[:2] == [0, 0] and waits[2] > 0
    assert sum("Redis unavailable" in r.getMessage() for r in caplog.records) == 1  # once, not per request
    await limit.aclose()
