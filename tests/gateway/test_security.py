"""The gateway's access model in process: scopes, owners, /v1/me, jobs per key, the rate limiter, CORS."""
from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager

import pytest
from pydantic import ValidationError

from dogsearch.core.access import ApiKey, InvalidKeyEntry
from dogsearch.services.gateway.app import create_app
from dogsearch.services.gateway.settings import GatewaySettings
from tests.fakes import fake_all_in_one, serving
from tests.images import solid

# name -> (scope, secret)
KEYS = {"reader": ("search", "dgs_reader-secret"), "alice": ("write", "dgs_alice-secret"),
        "bob": ("write", "dgs_bob-secret"), "root": ("admin", "dgs_root-secret")}
ENTRIES = [ApiKey.make(name, scope, secret).entry for name, (scope, secret) in KEYS.items()]


def as_(name: str) -> dict[str, str]:
    return {"X-API-Key": KEYS[name][1]}


@asynccontextmanager
async def gateway_with(tmp_path, jobs_options=None, **options):
    app = fake_all_in_one(tmp_path, gateway_options=options, jobs_options=jobs_options)
    async with serving(app) as client:
        yield client


def upload(color=(200, 0, 0)):
    return {"files": {"image": ("d.jpg", solid(color))}}


async def test_deprecated_single_key_is_an_admin_key_and_reads_need_a_key_too(tmp_path):
    # Behaviour change (issue 17): the old key was for writes only; it is now the admin key "admin", and without
    # DOGSEARCH_GATEWAY_ANONYMOUS_SEARCH reads and searches need a key as well.
    async with gateway_with(tmp_path, api_key="s3cret") as client:
        refused = await client.post("/v1/dogs", **upload())
        assert refused.status_code == 401 and "API key" in refused.json()["detail"]
        assert refused.json()["code"] == "unauthenticated" and refused.headers["www-authenticate"] == "Bearer"
        assert (await client.post("/v1/dogs", headers={"X-API-Key": "wrong"}, **upload())).status_code == 401
        added = await client.post("/v1/dogs", headers={"X-API-Key": "s3cret"}, **upload())
        assert added.status_code == 201
        dog = added.json()["id"]
        assert (await client.delete(f"/v1/dogs/{dog}")).status_code == 401
        assert (await client.get(f"/v1/dogs/{dog}")).status_code == 401
        assert (await client.post("/v1/search", **upload())).status_code == 401
        bearer = await client.delete(f"/v1/dogs/{dog}", headers={"Authorization": "Bearer s3cret"})
        assert bearer.status_code == 204


def test_api_key_comes_from_dogsearch_api_key(monkeypatch):
    monkeypatch.setenv("DOGSEARCH_API_KEY", "from-env")
    settings = GatewaySettings()
    assert settings.api_key.get_secret_value() == "from-env"
    assert [(k.name, k.scope) for k in settings.keyring.keys] == [("admin", "admin")]


async def test_each_scope_does_what_it_allows_and_no_more(tmp_path):
    async with gateway_with(tmp_path, api_keys=ENTRIES) as client:
        refused = await client.post("/v1/dogs", headers=as_("reader"), **upload())
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        added = await client.post("/v1/dogs", headers=as_("alice"), **upload())
        assert added.status_code == 201
        dog = added.json()["id"]
        assert "owner" not in added.json()["payload"]  # who added it is kept, not shown
        for name in ("reader", "alice", "root"):
            assert (await client.get(f"/v1/dogs/{dog}", headers=as_(name))).status_code == 200
            assert (await client.post("/v1/search", headers=as_(name), **upload())).status_code == 200
        assert (await client.get("/v1/dogs")).status_code == 401
        assert (await client.get("/metrics", headers=as_("alice"))).status_code == 403
        assert (await client.get("/metrics", headers=as_("root"))).status_code == 200
        assert (await client.get("/healthz")).status_code == 200  # health checks stay open


async def test_only_the_key_that_added_a_dog_or_an_admin_deletes_it(tmp_path):
    async with gateway_with(tmp_path, api_keys=ENTRIES) as client:
        first = (await client.post("/v1/dogs", headers=as_("alice"), **upload((200, 0, 0)))).json()["id"]
        second = (await client.post("/v1/dogs", headers=as_("alice"), **upload((0, 0, 200)))).json()["id"]
        # The owner is shown to its key and to admins (so a client knows what it may delete), to nobody else.
        for name, owner in (("alice", "alice"), ("root", "alice"), ("bob", None), ("reader", None)):
            assert (await client.get(f"/v1/dogs/{first}", headers=as_(name))).json()["owner"] == owner, name
            page = (await client.get("/v1/dogs", headers=as_(name))).json()
            assert {dog["owner"] for dog in page["items"]} == {owner}, name
        for name in ("bob", "reader"):
            refused = await client.delete(f"/v1/dogs/{first}", headers=as_(name))
            assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert (await client.delete(f"/v1/dogs/{first}", headers=as_("alice"))).status_code == 204
        assert (await client.delete(f"/v1/dogs/{second}", headers=as_("root"))).status_code == 204
        assert (await client.get("/v1/dogs", headers=as_("root"))).json()["total"] == 0


async def test_anonymous_search_when_the_operator_turns_it_on(tmp_path):
    async with gateway_with(tmp_path, api_keys=ENTRIES, anonymous_search=True) as client:
        dog = (await client.post("/v1/dogs", headers=as_("alice"), **upload())).json()["id"]
        assert (await client.post("/v1/search", **upload())).status_code == 200
        assert (await client.get(f"/v1/dogs/{dog}")).status_code == 200
        assert (await client.post("/v1/dogs", **upload((0, 200, 0)))).status_code == 401
        assert (await client.delete(f"/v1/dogs/{dog}")).status_code == 401
        assert (await client.get("/v1/jobs")).status_code == 401


async def test_me_says_who_the_caller_is(tmp_path):
    async with gateway_with(tmp_path, api_keys=ENTRIES) as client:
        assert (await client.get("/v1/me")).json() == {"name": None, "scope": None, "scopes": [], "open": False,
                                                       "anonymous_search": False, "server_folders": False,
                                                       "allowed_roots": None}
        alice = await client.get("/v1/me", headers={"Authorization": f"Bearer {KEYS['alice'][1]}"})
        assert alice.json() == {"name": "alice", "scope": "write", "scopes": ["search", "write"], "open": False,
                                "anonymous_search": False, "server_folders": False, "allowed_roots": None}
        wrong = await client.get("/v1/me", headers={"X-API-Key": "dgs_made-up"})
        assert wrong.status_code == 401 and wrong.json()["code"] == "unauthenticated"
    async with gateway_with(tmp_path / "open") as client:  # no keys: the loopback demo
        assert (await client.get("/v1/me")).json() == {"name": None, "scope": "admin",
                                                       "scopes": ["search", "write", "admin"], "open": True,
                                                       "anonymous_search": False, "server_folders": False,
                                                       "allowed_roots": []}


async def test_me_says_whether_jobs_read_server_folders_and_only_an_admin_which(tmp_path):
    # The web UI's job form offered "a folder the server reads" where the server reads none (the demo): its first
    # Start was a 403. Which folders it reads are paths on the server: an admin's to see, nobody else's.
    imports = tmp_path / "imports"
    async with gateway_with(tmp_path / "data", jobs_options={"allowed_roots": [imports]}, api_keys=ENTRIES) as client:
        root = (await client.get("/v1/me", headers=as_("root"))).json()
        assert (root["server_folders"], root["allowed_roots"]) == (True, [str(imports.resolve())])
        for who in ("alice", "reader"):
            me = (await client.get("/v1/me", headers=as_(who))).json()
            assert (me["server_folders"], me["allowed_roots"]) == (True, None), who
        assert (await client.get("/v1/me")).json()["allowed_roots"] is None


async def test_two_keys_that_differ_are_a_401_even_beside_a_valid_one(tmp_path):
    alice, root = KEYS["alice"][1], KEYS["root"][1]
    async with gateway_with(tmp_path, api_keys=ENTRIES) as client:
        for headers in ([("X-API-Key", alice), ("Authorization", "Bearer dgs_made-up")],
                        [("X-API-Key", "dgs_made-up"), ("Authorization", f"Bearer {alice}")],
                        [("X-API-Key", alice), ("Authorization", f"Bearer {root}")],
                        [("X-API-Key", alice), ("X-API-Key", root)]):
            r = await client.get("/v1/me", headers=headers)
            assert r.status_code == 401 and r.json()["code"] == "two_keys", headers
            assert r.headers["www-authenticate"] == "Bearer"
        same = await client.get("/v1/me", headers={"X-API-Key": alice, "Authorization": f"Bearer {alice}"})
        assert same.json()["name"] == "alice"


async def test_a_write_key_sees_and_cancels_only_its_own_jobs(tmp_path):
    photos = tmp_path / "imports" / "beagle"
    photos.mkdir(parents=True)
    (photos / "a.jpg").write_bytes(solid((200, 0, 0)))
    jobs = {"allowed_roots": [tmp_path / "imports"]}
    async with gateway_with(tmp_path / "data", jobs_options=jobs, api_keys=ENTRIES) as client:
        body = {"path": str(tmp_path / "imports"), "labels": "folders"}
        job = (await client.post("/v1/jobs/index", json=body, headers=as_("alice"))).json()["id"]
        assert [j["id"] for j in (await client.get("/v1/jobs", headers=as_("alice"))).json()["items"]] == [job]
        assert (await client.get("/v1/jobs", headers=as_("bob"))).json()["items"] == []
        assert (await client.get(f"/v1/jobs/{job}", headers=as_("bob"))).status_code == 404
        assert (await client.delete(f"/v1/jobs/{job}", headers=as_("bob"))).status_code == 404
        assert (await client.get("/v1/jobs", headers=as_("reader"))).status_code == 403
        seen = (await client.get(f"/v1/jobs/{job}", headers=as_("root"))).json()
        assert seen["owner"] == "alice"
        for _ in range(200):  # the job's dogs are the job's key's
            if (await client.get(f"/v1/jobs/{job}", headers=as_("alice"))).json()["state"] == "done":
                break
            await asyncio.sleep(0.05)
        [dog] = (await client.get("/v1/dogs", headers=as_("root"))).json()["items"]
        assert (await client.delete(f"/v1/dogs/{dog['id']}", headers=as_("bob"))).status_code == 403
        assert (await client.delete(f"/v1/dogs/{dog['id']}", headers=as_("alice"))).status_code == 204


async def test_rate_limit_buckets_on_the_authenticated_key_and_answers_429_with_retry_after(tmp_path):
    async with gateway_with(tmp_path, rate_limit_per_minute=60, rate_limit_burst=3) as client:
        codes = [(await client.get("/v1/dogs")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        limited = await client.get("/v1/dogs")
        assert int(limited.headers["retry-after"]) >= 1
        # Open (no keys): a made-up key is nobody, and buys no bucket of its own.
        assert (await client.get("/v1/dogs", headers={"X-API-Key": "other"})).status_code == 429
        assert (await client.get("/healthz")).status_code == 200  # health checks are never limited
    async with gateway_with(tmp_path / "keys", api_keys=ENTRIES, rate_limit_per_minute=60,
                            rate_limit_burst=3) as client:
        assert [(await client.get("/v1/dogs", headers=as_("alice"))).status_code for _ in range(4)][-1] == 429
        assert (await client.get("/v1/dogs", headers=as_("bob"))).status_code == 200  # a key of its own


async def test_made_up_keys_cost_their_address_and_run_dry(tmp_path):
    async with gateway_with(tmp_path, api_keys=ENTRIES, rate_limit_per_minute=60, rate_limit_burst=10) as client:
        codes = [(await client.get("/v1/dogs", headers={"X-API-Key": f"dgs_{uuid.uuid4()}"})).status_code
                 for _ in range(4)]
        assert codes[:2] == [401, 401] and codes[2:] == [429, 429]  # 5 tokens a failure, 10 in the bucket
        assert (await client.get("/v1/dogs", headers=as_("alice"))).status_code == 200


async def test_refusals_are_counted_in_the_metrics(tmp_path):
    # The access layer answers before any route, so the request metrics would never see someone knocking.
    def refused(text: str) -> dict[str, float]:
        return {line.split('"')[1]: float(line.split()[-1]) for line in text.splitlines()
                if line.startswith("dogsearch_access_refused_total{")}

    async with gateway_with(tmp_path, api_keys=ENTRIES, rate_limit_per_minute=60, rate_limit_burst=10) as client:
        before = refused((await client.get("/metrics", headers=as_("root"))).text)
        assert (await client.get("/v1/dogs")).status_code == 401
        assert (await client.post("/v1/dogs", headers=as_("reader"), **upload())).status_code == 403
        made_up = [(await client.get("/v1/dogs", headers={"X-API-Key": "dgs_guess"})).status_code for _ in range(3)]
        assert made_up == [401, 401, 429]
        after = refused((await client.get("/metrics", headers=as_("root"))).text)
    assert {reason: after.get(reason, 0) - before.get(reason, 0) for reason in after} == {
        "unauthenticated": 1, "forbidden": 1, "unknown_key": 2, "rate_limited": 1}


@pytest.mark.parametrize(("origin", "allowed"), [("https://dogs.example", True), ("https://evil.example", False)])
async def test_cors_origins_come_from_settings(tmp_path, origin, allowed):
    async with gateway_with(tmp_path, cors_origins=["https://dogs.example"]) as client:
        r = await client.options("/v1/search", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert (r.headers.get("access-control-allow-origin") == origin) is allowed
        # the headers a browser app needs from an answer (a new job's Location, a 429's Retry-After, a 401's
        # WWW-Authenticate): hidden from its script unless exposed
        r = await client.get("/v1/dogs", headers={"Origin": origin})
        exposed = {h.strip().lower() for h in r.headers.get("access-control-expose-headers", "").split(",")}
        assert {"location", "retry-after", "www-authenticate"} <= exposed or not allowed


def test_keys_come_as_a_json_list_a_comma_list_or_a_file(monkeypatch, tmp_path):
    monkeypatch.setenv("DOGSEARCH_GATEWAY_API_KEYS", ",".join(ENTRIES[:2]))
    assert [k.name for k in GatewaySettings().keyring.keys] == ["reader", "alice"]
    monkeypatch.setenv("DOGSEARCH_GATEWAY_API_KEYS", f'["{ENTRIES[2]}"]')
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text(f"# the admins\n{ENTRIES[3]}  # root\n\n")
    monkeypatch.setenv("DOGSEARCH_GATEWAY_API_KEYS_FILE", str(keys_file))
    assert [k.name for k in GatewaySettings().keyring.keys] == ["bob", "root"]


@pytest.mark.parametrize("entries", [
    ["bob:superuser:" + "a" * 64],  # no such scope
    ["bob:write:" + "A" * 64],  # not lowercase hex
    ["bob:write:abc"],  # too short
    ["dgs_pasted-a-secret"],  # not an entry
])
def test_bad_key_entries_stop_the_service_at_start(entries):
    with pytest.raises(ValidationError):
        GatewaySettings(api_keys=entries)


def test_a_bad_keys_file_or_a_name_twice_stops_the_gateway_at_start(tmp_path):
    with pytest.raises(InvalidKeyEntry, match="twice"):
        create_app(GatewaySettings(api_keys=["bob:write:" + "a" * 64, "bob:admin:" + "b" * 64]))
    with pytest.raises(InvalidKeyEntry, match="api_keys_file"):
        create_app(GatewaySettings(api_keys_file=tmp_path / "nope.txt"))
    bad = tmp_path / "keys.txt"
    bad.write_text("bob:write:" + "a" * 64 + "\nroot:root:" + "b" * 64 + "\n")
    with pytest.raises(InvalidKeyEntry, match="scope"):
        create_app(GatewaySettings(api_keys_file=bad))


def test_a_bare_api_key_variable_is_not_read(monkeypatch):
    # API_KEY is a common name in a shell: only the DOGSEARCH_ names count.
    monkeypatch.setenv("API_KEY", "whatever")
    monkeypatch.delenv("DOGSEARCH_API_KEY", raising=False)
    monkeypatch.delenv("DOGSEARCH_GATEWAY_API_KEY", raising=False)
    assert GatewaySettings().keyring.open and os.environ["API_KEY"]


async def test_a_dog_is_changed_by_its_owner_or_an_admin_and_any_reader_may_detect_and_preview(tmp_path):
    """... and read when and where a photo was taken (POST /v1/taken), which stores nothing either."""
    async with gateway_with(tmp_path / "data", api_keys=ENTRIES) as client:
        dog = (await client.post("/v1/dogs", headers=as_("alice"), **upload())).json()["id"]
        patch = {"json": {"breed": "beagle"}}
        assert (await client.patch(f"/v1/dogs/{dog}", headers=as_("reader"), **patch)).status_code == 403
        refused = await client.patch(f"/v1/dogs/{dog}", headers=as_("bob"), **patch)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
        assert (await client.patch(f"/v1/dogs/{dog}", **patch)).status_code == 401
        mine = await client.patch(f"/v1/dogs/{dog}", headers=as_("alice"), **patch)
        assert mine.status_code == 200 and mine.json()["payload"]["breed"] == "beagle"
        admin = await client.patch(f"/v1/dogs/{dog}", headers=as_("root"), json={"breed": "pug"})
        assert admin.status_code == 200 and admin.json()["payload"]["breed"] == "pug"
        found = await client.post("/v1/detect", headers=as_("reader"), **upload())
        assert found.status_code == 200 and len(found.json()["dogs"]) == 1  # the detector off: the whole photo
        assert (await client.post("/v1/detect", **upload())).status_code == 401
        shown = await client.post("/v1/preview", headers=as_("reader"), **upload())
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        assert (await client.post("/v1/preview", **upload())).status_code == 401
        assert (await client.post("/v1/taken", headers=as_("reader"), **upload())).status_code == 200
        assert (await client.post("/v1/taken", **upload())).status_code == 401


async def test_a_stored_photo_added_again_fills_in_another_keys_dog_only_for_an_admin(tmp_path):
    # An admin may PATCH any dog: adding its photo again with fields the dog lacks fills them in as PATCH would
    # (it was a 409). Another write key still may not, and a value the dog holds is changed by no one this way.
    async with gateway_with(tmp_path / "data", api_keys=ENTRIES) as client:
        dog = (await client.post("/v1/dogs", headers=as_("alice"), data={"name": "Rex"}, **upload())).json()["id"]
        refused = await client.post("/v1/dogs", headers=as_("bob"), data={"breed": "beagle"}, **upload())
        assert refused.status_code == 409 and refused.json()["code"] == "photo_stored_already"
        assert "another key's" in refused.json()["detail"] and refused.json()["dog_id"] == dog
        filled = await client.post("/v1/dogs", headers=as_("root"), data={"name": "Rex", "breed": "beagle"},
                                   **upload())
        assert filled.status_code == 200, filled.text
        assert (filled.json()["id"], filled.json()["owner"], filled.json()["payload"]["breed"]) == (dog, "alice",
                                                                                                     "beagle")
        other = await client.post("/v1/dogs", headers=as_("root"), data={"name": "Max"}, **upload())
        assert other.status_code == 409 and "with other values than those sent" in other.json()["detail"]
        shown = (await client.get(f"/v1/dogs/{dog}", headers=as_("alice"))).json()
        assert (shown["payload"]["name"], shown["payload"]["breed"], shown["owner"]) == ("Rex", "beagle", "alice")


async def test_a_keys_answers_are_stored_by_no_cache(tmp_path):
    """A key's jobs (server paths), watches (webhook URLs), identity and dogs went out with no Cache-Control: a
    shared cache that ignores X-API-Key could hand them to another caller. The photos keep their own (revalidated
    with ETags)."""
    async with gateway_with(tmp_path, api_keys=ENTRIES) as client:
        dog = (await client.post("/v1/dogs", headers=as_("alice"), **upload())).json()["id"]
        for path in ("/v1/me", "/v1/jobs", "/v1/watches", f"/v1/dogs/{dog}", "/v1/dogs", "/v1/nothing"):
            answer = await client.get(path, headers=as_("alice"))
            assert answer.headers["cache-control"] == "no-store", (path, answer.status_code)
        refused = await client.get("/v1/me", headers={"X-API-Key": "dgs_made-up"})
        assert refused.headers["cache-control"] == "no-store"
        photo = await client.get(f"/v1/dogs/{dog}/image", headers=as_("alice"))
        assert photo.status_code == 200 and photo.headers["cache-control"] == "private, no-cache"
