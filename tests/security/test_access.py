"""Access, attacked from outside: a real `dogsearch serve` process each, and what a stranger, another key's holder
or a key guesser tries against it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import httpx

from dogsearch.core.access import ApiKey
from tests.images import solid
from tests.processes import free_port

INTERNAL = "internal-" + uuid.uuid4().hex
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('DOGSEARCH_TEST_REDIS_DB', '13')}"


def make_key(keys_file, name: str, scope: str) -> str:
    """`dogsearch keys add`, as an operator runs it: the secret it prints once."""
    out = subprocess.run([sys.executable, "-m", "dogsearch.cli", "keys", "add", name, "--scope", scope,
                          "--file", str(keys_file)], capture_output=True, text=True, check=True).stdout
    assert f"appended to {keys_file}" in out
    return re.search(r"secret \(shown once.*\): (\S+)", out).group(1)


def key(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def photo(color=(200, 0, 0)) -> dict:
    return {"files": {"image": ("d.jpg", solid(color))}}


def test_strangers_and_other_keys_cannot_delete_or_read_and_the_internal_doors_are_shut(start_server, tmp_path):
    keys_file = tmp_path / "keys.txt"
    alice, bob, root = (make_key(keys_file, n, s) for n, s in (("alice", "write"), ("bob", "write"),
                                                                ("root", "admin")))
    # As compose runs it: keys required, a broker (so /internal/* is mounted for workers), the internal key.
    server = start_server(env={"DOGSEARCH_GATEWAY_API_KEYS_FILE": str(keys_file),
                               "DOGSEARCH_GATEWAY_REQUIRE_KEYS": "true", "DOGSEARCH_BROKER_URL": REDIS_URL,
                               "DOGSEARCH_INTERNAL_KEY": INTERNAL})
    with httpx.Client(base_url=server.url, timeout=60) as http:
        dog = http.post("/v1/dogs", headers=key(alice), **photo())
        assert dog.status_code == 201, dog.text
        dog_id = dog.json()["id"]
        # The anonymous delete, and the anonymous walk through every dog.
        anonymous = http.delete(f"/v1/dogs/{dog_id}")
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthenticated"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert http.get("/v1/dogs").status_code == 401
        # Another write key cannot delete alice's dog; an admin can.
        other = http.delete(f"/v1/dogs/{dog_id}", headers=key(bob))
        assert other.status_code == 403 and other.json()["code"] == "forbidden"
        assert http.get(f"/v1/dogs/{dog_id}", headers=key(bob)).status_code == 200
        assert http.delete(f"/v1/dogs/{dog_id}", headers=key(root)).status_code == 204
        # /internal: delete vectors, recreate the collection with a bogus model, freeze the process with a build.
        for method, path, body in (("DELETE", "/internal/search/v1/points/" + dog_id, None),
                                   ("PUT", "/internal/search/v1/collection", {"dim": 3, "model": "bogus"}),
                                   ("POST", "/internal/search/v1/optimize", None),
                                   ("POST", "/internal/search/v1/points/count", {})):
            assert http.request(method, path, json=body).status_code == 401, path
            assert http.request(method, path, json=body, headers=key(bob)).status_code == 403, path
        assert http.post("/internal/search/v1/points/count", json={}, headers=key(INTERNAL)).status_code == 200
        # /metrics: admin or the internal key (Prometheus).
        assert http.get("/metrics").status_code == 401
        assert http.get("/metrics", headers=key(alice)).status_code == 403
        assert http.get("/metrics", headers=key(root)).status_code == 200
        assert http.get("/metrics", headers=key(INTERNAL)).status_code == 200
    # The CLI as a client: the key from DOGSEARCH_CLIENT_API_KEY or a file, never on the command line.
    query = tmp_path / "query.jpg"
    query.write_bytes(solid((200, 0, 0)))
    (tmp_path / "alice.key").write_text(alice + "\n")
    cli = [sys.executable, "-m", "dogsearch.cli", "search", str(query), "--url", server.url, "--json"]
    env = {k: v for k, v in os.environ.items() if k != "DOGSEARCH_CLIENT_API_KEY"}
    refused = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "key" in refused.stderr, refused.stderr
    for extra_args, extra_env in (([], {"DOGSEARCH_CLIENT_API_KEY": alice}),
                                  (["--api-key-file", str(tmp_path / "alice.key")], {})):
        done = subprocess.run(cli + extra_args, capture_output=True, text=True, env=env | extra_env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "results" in json.loads(done.stdout)


def test_serve_reachable_by_others_without_an_admin_key_refuses_to_start(start_server):
    gateway = start_server(host="0.0.0.0", wait=False, port=free_port())
    assert gateway.proc.wait(60) != 0
    assert "dogsearch keys add admin --scope admin" in gateway.tail()
    # An internal service on every interface without the internal key, likewise.
    search = start_server("search", host="0.0.0.0", wait=False, port=free_port())
    assert search.proc.wait(60) != 0 and "DOGSEARCH_INTERNAL_KEY" in search.tail()
    # Keys required (compose) refuse even on loopback.
    required = start_server(wait=False, env={"DOGSEARCH_GATEWAY_REQUIRE_KEYS": "true"})
    assert required.proc.wait(60) != 0 and "REQUIRE_KEYS" in required.tail()


def test_a_made_up_key_per_request_gets_429_and_so_does_a_spoofed_forwarded_for(start_server):
    alice = "dgs_" + uuid.uuid4().hex
    server = start_server(env={"DOGSEARCH_GATEWAY_API_KEYS": ApiKey.make("alice", "write", alice).entry,
                               "DOGSEARCH_GATEWAY_RATE_LIMIT_PER_MINUTE": "1",
                               "DOGSEARCH_GATEWAY_RATE_LIMIT_BURST": "20"})
    with httpx.Client(base_url=server.url, timeout=60) as http:
        codes = [http.get("/v1/dogs", headers=key(f"dgs_{uuid.uuid4().hex}")).status_code for _ in range(12)]
        assert codes[0] == 401 and codes[-1] == 429 and set(codes) == {401, 429}
        assert codes.count(401) <= 4  # 5 tokens a failure: the guesser runs dry within a few tries
        # The holder of a real key has a bucket of its own.
        assert http.get("/v1/dogs", headers=key(alice)).status_code == 200
        # No trusted proxies: a client cannot buy itself a new bucket with X-Forwarded-For.
        spoofed = [http.get("/v1/dogs", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(5)]
        assert set(spoofed) == {429}


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(start_server):
    server = start_server(env={"DOGSEARCH_GATEWAY_TRUSTED_PROXIES": "127.0.0.0/8",
                               "DOGSEARCH_GATEWAY_RATE_LIMIT_PER_MINUTE": "1",
                               "DOGSEARCH_GATEWAY_RATE_LIMIT_BURST": "3"})
    with httpx.Client(base_url=server.url, timeout=60) as http:
        def as_client(address: str, n: int) -> list[int]:
            # What a client wrote itself comes first; the proxy appends the address it saw.
            return [http.get("/v1/dogs", headers={"X-Forwarded-For": f"6.6.6.{i}, {address}"}).status_code
                    for i in range(n)]

        assert as_client("198.51.100.1", 5) == [200, 200, 200, 429, 429]
        assert as_client("198.51.100.2", 3) == [200, 200, 200]


def test_the_lossless_check_reaches_a_search_service_that_asks_for_the_internal_key(start_server, tmp_path):
    # `dogsearch check --search-url` is run beside a deployment, whose search service asks every caller for the
    # internal key: the check sends the one its environment sets, as the gateway does (it sent none: refused).
    search = start_server("search", data_dir=tmp_path / "vectors", env={"DOGSEARCH_INTERNAL_KEY": INTERNAL})
    (tmp_path / "photos").mkdir()

    def check(**env: str) -> subprocess.CompletedProcess:
        environ = {k: v for k, v in os.environ.items() if not k.endswith("INTERNAL_KEY")} | env
        return subprocess.run([sys.executable, "-m", "dogsearch.cli", "check", "--search-url", search.url, "--photos",
                               str(tmp_path / "photos"), "--data-dir", str(tmp_path / "unused")],
                              capture_output=True, text=True, timeout=120, env=environ)

    refused = check()
    assert refused.returncode != 0 and "internal key" in refused.stdout + refused.stderr
    done = check(DOGSEARCH_INTERNAL_KEY=INTERNAL)
    assert done.returncode == 0, done.stdout + done.stderr
