"""Requests a stranger can send that cost the services behind the gateway many calls each, and what they tell him
of the network behind it: a real `dogsearch serve` process each; what it asked of its services is counted in its
/metrics (all in one process, it carries the embedder's, search's and pose service's request counters)."""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from dogsearch.core.access import ApiKey
from tests.images import solid
from tests.security.test_access import INTERNAL, key

DEAD_BROKER = "redis://127.0.0.1:1/0"  # nothing listens on port 1: the broker's error names 127.0.0.1:1


def requests_to(url: str, service: str, route: str = r"[^\"]+", headers: dict | None = None) -> int:
    """The requests the server's `service` has answered on routes matching `route`, so far."""
    text = httpx.get(f"{url}/metrics", headers=headers, timeout=30).text
    pattern = rf'dogsearch_http_requests_total\{{method="[A-Z]+",route="{route}",service="{service}",status="\d+"\}} '
    return int(sum(float(n) for n in re.findall(pattern + r"([0-9.e+]+)", text)))


def test_a_search_poses_at_most_the_bound_of_stored_dogs(start_server):
    """rerank=pose posed every candidate (up to k x 3, at most 100) and pose=true every result: one search of k=100
    was 100 pose calls, each on a stored photo decoded whole, and varying the filters keeps the pose cache from
    answering. Now the best POSE_SEARCH_MAX candidates are posed (re-ordered), the rest follow in their cosine
    order without a pose."""
    bound, stored = 4, 10
    server = start_server(env={"DOGSEARCH_GATEWAY_POSE_SEARCH_MAX": str(bound)})
    url = server.url
    for i in range(stored):
        added = httpx.post(f"{url}/v1/dogs", files={"image": ("d.jpg", solid((25 * i, 200 - 15 * i, 90), (320, 240)))},
                           data={"breed": "odd" if i % 2 else "even"}, timeout=120)
        assert added.status_code == 201, added.text
    query = {"image": ("q.jpg", solid((100, 120, 90), (320, 240)))}
    for fields, found in (({"rerank": "pose"}, stored), ({"pose": "true", "breed": "odd"}, stored // 2),
                          ({"pose": "true", "rerank": "pose", "breed": "even"}, stored // 2)):
        before = requests_to(url, "pose", "/v1/pose")
        answer = httpx.post(f"{url}/v1/search", files=query, data={"k": "100", **fields}, timeout=300)
        assert answer.status_code == 200 and answer.json()["pose_error"] is None, answer.text
        calls = requests_to(url, "pose", "/v1/pose") - before
        assert calls <= bound + 1, f"{fields}: {calls} pose calls (the query's and {bound} stored dogs' at most)"
        results = answer.json()["results"]
        assert len(results) == found, fields
        posed = [r for r in results if r.get("pose") is not None or r.get("rerank_score") is not None]
        assert posed == results[:bound], fields
        rest = [r["score"] for r in results[bound:]]
        assert rest == sorted(rest, reverse=True), fields


def test_readyz_hides_the_network_from_strangers_and_a_flood_of_probes_costs_the_services_nothing(start_server):
    """/readyz is open (Kubernetes probes it without a key) and said why it was not ready in the upstreams' own
    words, which name internal hosts (the broker's error: its address); each probe asked the embedder and the search
    service 3 requests (200 probes: 600). Now its reasons are for the admin and internal keys (others read where to
    find them), and its checks are kept READY_CACHE_S: a flood of probes asks the services no more often than that."""
    admin, reader = "dgs_" + "a" * 40, "dgs_" + "r" * 40
    keys = ",".join(ApiKey.make(name, scope, secret).entry for name, scope, secret in (("boss", "admin", admin),
                                                                                        ("reader", "search", reader)))
    server = start_server(env={"DOGSEARCH_GATEWAY_API_KEYS": keys, "DOGSEARCH_BROKER_URL": DEAD_BROKER,
                               "DOGSEARCH_INTERNAL_KEY": INTERNAL, "DOGSEARCH_GATEWAY_READY_CACHE_S": "5"})
    url = server.url
    deadline = time.monotonic() + 60
    while "upgrading" in (ready := httpx.get(f"{url}/readyz", headers=key(admin), timeout=30)).text:
        assert time.monotonic() < deadline, ready.text  # the start's storage upgrade (nothing stored: a moment)
        time.sleep(0.5)
    assert ready.status_code == 200 and "127.0.0.1:1" in ready.json()["degraded"], ready.text
    assert "127.0.0.1:1" in httpx.get(f"{url}/readyz", headers=key(INTERNAL), timeout=30).json()["degraded"]
    for headers in ({}, key(reader), key("dgs_" + "x" * 40)):
        hidden = httpx.get(f"{url}/readyz", headers=headers, timeout=30)
        assert hidden.status_code == 200 and "127.0.0.1" not in hidden.text, (headers, hidden.text)
        assert "in the log" in hidden.json()["degraded"], hidden.text
    assert "127.0.0.1:1" in server.tail()  # the details are in the log

    metrics = key(admin)
    before = sum(requests_to(url, service, headers=metrics) for service in ("embedder", "search"))
    start = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{url}/readyz", timeout=30).status_code, range(200)))
    elapsed = time.monotonic() - start
    assert answers == [200] * 200
    asked = sum(requests_to(url, service, headers=metrics) for service in ("embedder", "search")) - before
    # one check (3 or 4 requests) each 5 s at most; was 600
    assert asked <= 4 * (int(elapsed / 5) + 1), f"200 probes in {elapsed:.1f} s asked the services {asked} times"


def test_no_path_with_a_trailing_slash_is_redirected_to_the_host_the_request_named(start_server):
    """/metrics/ (and any route's path with a slash added) answered 307 to http://<the request's Host
    header>/metrics: a redirect to wherever the caller said, served by our origin. Now a 404 like any unknown path,
    on every service."""
    admin = "dgs_" + "a" * 40
    server = start_server(env={"DOGSEARCH_GATEWAY_API_KEYS": ApiKey.make("boss", "admin", admin).entry})
    for path in ("/metrics/", "/readyz/", "/healthz/", "/v1/dogs/", "/v1/me/"):
        for headers in ({}, key(admin)):
            answer = httpx.get(f"{server.url}{path}", headers={"Host": "evil.example", **headers}, timeout=30)
            assert "location" not in answer.headers and answer.status_code in (401, 404), (path, answer.status_code)
    assert httpx.get(f"{server.url}/metrics", headers=key(admin), timeout=30).status_code == 200
