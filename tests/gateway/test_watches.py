"""Watches through the public API, all-in-one (no broker: the check runs in the process): a watch on a lost dog is
told, through a real webhook on loopback, about a found dog that matches, once, signed, after a failed attempt;
deleting the watched dog ends the watch, and a deleted dog leaves the inboxes; a second watch of the same dog names
the first, whose lost secret is replaced; ownership; limits; webhook targets outside the public internet refused."""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import httpx
import pytest

from dogsearch.core.access import ApiKey
from dogsearch.models.calibration import FILE_NAME, Calibration
from tests.fakes import fake_all_in_one, serving
from tests.gateway.helpers import BLUE, DARK_RED, RED, add, search
from tests.gateway.test_dogcrop import RED_DOG, TWO_DOGS
from tests.gateway.test_samedog import CALIBRATION
from tests.images import solid
from tests.watches.receiver import Receiver, signed

KEYS = {"alice": ("write", "alice-secret"), "bob": ("write", "bob-secret"), "eve": ("search", "eve-secret"),
        "root": ("admin", "root-secret")}


def _app(tmp_path, fake_model, calibration=CALIBRATION, detector: bool = False, **options):
    models = tmp_path / "models"
    (models / "test-color-grid").mkdir(parents=True, exist_ok=True)
    (models / "test-color-grid" / FILE_NAME).write_text(json.dumps(calibration.to_json()))
    return fake_all_in_one(tmp_path / "data", fake_model, detector=detector, gateway_options={
        "calibration_dir": models, "webhook_backoff_s": 0.05, "webhook_poll_s": 0.05, **options})


@pytest.fixture
async def gw(tmp_path, fake_model):
    app = _app(tmp_path, fake_model, webhook_allow_private=True)
    async with serving(app) as client:
        yield client


@pytest.fixture
async def keyed(tmp_path, fake_model):
    """Keys for alice and bob (write), eve (search) and root (admin); one client per key."""
    keys = [ApiKey.make(name, scope, secret).entry for name, (scope, secret) in KEYS.items()]
    app = _app(tmp_path, fake_model, api_keys=keys, max_watches_per_key=2, webhook_allow_private=True)
    async with app.router.lifespan_context(app):
        clients = {name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw",
                                           headers={"X-API-Key": secret}) for name, (_, secret) in KEYS.items()}
        yield clients
        for c in clients.values():
            await c.aclose()


async def _wait(predicate, timeout: float = 20.0):
    for _ in range(int(timeout / 0.05)):
        if (value := await predicate()):
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_a_found_dog_that_matches_a_lost_dogs_watch_is_delivered_once_signed_after_a_500(gw):
    with Receiver(statuses=(500,)) as receiver:
        lost = (await add(gw, solid(RED), name="Rex", status="lost", location="52.52,13.405")).json()["id"]
        r = await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url, "min_probability": 0.5})
        assert r.status_code == 201, r.text
        watch = r.json()
        assert watch["secret"].startswith("whsec_") and watch["dog_id"] == lost
        assert watch["status"] == ["found", "sighted", "shelter"]  # a lost dog waits for the reports that answer it
        assert r.headers["location"] == f"/v1/watches/{watch['id']}"

        found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
        await add(gw, solid(BLUE), status="found")  # another dog: unlikely the same
        await add(gw, solid(DARK_RED, size=(66, 48)), status="lost")  # alike, but a lost report answers no lost one
        (first, second) = await receiver.wait_for(2)
        await asyncio.sleep(0.3)  # nothing more comes
        assert len(receiver.received) == 2

    for headers, body in (first, second):
        assert headers["x-dogsearch-signature"] == signed(watch["secret"], body)
        assert headers["x-dogsearch-delivery"] == f"{watch['id']}:{found}"
    assert first[1] == second[1]  # the same bytes on every attempt
    sent = json.loads(second[1])
    assert sent["watch"] == watch["id"] and sent["dog"]["id"] == found and sent["watched_dog"] == lost
    assert sent["dog"]["payload"]["status"] == "found" and "owner" not in sent["dog"]["payload"]
    assert sent["probability"] == pytest.approx(CALIBRATION.probability(sent["score"]), abs=1e-3)
    assert sent["probability"] >= 0.5
    assert (first[0]["x-dogsearch-attempt"], second[0]["x-dogsearch-attempt"]) == ("1", "2")

    inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    assert [m["dog"]["id"] for m in inbox] == [found]
    assert inbox[0]["delivery"]["state"] == "delivered" and inbox[0]["delivery"]["attempts"] == 2
    assert [(a["n"], a["status"]) for a in inbox[0]["delivery"]["history"]] == [(1, 500), (2, 200)]
    assert inbox[0]["delivery"]["history"][0]["error"] == "HTTP 500"
    assert inbox[0]["dog"]["thumbnail_url"] == f"/v1/dogs/{found}/image?size=thumbnail"

    # The same photo uploaded again is the same dog: checked again, matched and sent no second time.
    assert (await add(gw, solid(DARK_RED), status="found")).status_code == 200
    await asyncio.sleep(0.3)
    assert len((await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]) == 1
    assert len(receiver.received) == 2


async def test_deleting_the_watched_dog_ends_its_watch_and_a_deleted_match_leaves_the_inbox(gw):
    """Rex's owner deletes his report (he is home): his watch ends, says so and keeps its inbox, its webhook is told
    once (`watch.ended`, signed as a match is), and a look-alike found later alerts nobody. A found dog deleted leaves
    the inbox: no page or photo of it answers any more."""
    with Receiver() as receiver:
        lost = (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"]
        watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
        found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
        seen = (await add(gw, solid(DARK_RED, size=(66, 48)), status="sighted")).json()["id"]
        await receiver.wait_for(2)

        async def inbox():
            return [m["dog"]["id"] for m in (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]]

        assert sorted(await inbox()) == sorted([found, seen])
        assert (await gw.delete(f"/v1/dogs/{found}")).status_code == 204
        assert await inbox() == [seen]
        assert (await gw.get(f"/v1/dogs/{seen}/image?size=thumbnail")).status_code == 200

        assert (await gw.get(f"/v1/watches/{watch['id']}")).json()["ended_at"] is None
        assert (await gw.delete(f"/v1/dogs/{lost}")).status_code == 204
        ended = (await gw.get(f"/v1/watches/{watch['id']}")).json()
        assert ended["ended_at"] is not None and ended["dog_id"] == lost
        assert [w["ended_at"] for w in (await gw.get("/v1/watches")).json()["items"]] == [ended["ended_at"]]
        headers, body = (await receiver.wait_for(3))[2]
        assert json.loads(body) == {"event": "watch.ended", "watch": watch["id"], "watched_dog": lost,
                                    "ended_at": ended["ended_at"], "reason": "dog_deleted"}
        assert headers["x-dogsearch-signature"] == signed(watch["secret"], body)
        assert headers["x-dogsearch-delivery"] == f"{watch['id']}:{lost}"
        await add(gw, solid(DARK_RED, size=(68, 48)), status="found")  # alike: it would have alerted
        await asyncio.sleep(0.3)
        assert await inbox() == [seen]  # kept, and nothing new
        assert len(receiver.received) == 3

    # The same photo stored again is the same dog, id and all: watched anew, not refused for the ended watch.
    assert (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"] == lost
    again = await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})
    assert again.status_code == 201, again.text


async def test_an_ended_watch_says_whether_its_end_reached_its_webhook(tmp_path, fake_model):
    """Read as a match's delivery is: a webhook that answers 500 every time has the end fail after its attempts, each
    one listed; an open watch has no end to tell."""
    app = _app(tmp_path, fake_model, webhook_allow_private=True, webhook_max_attempts=2)
    async with serving(app) as gw:
        with Receiver(statuses=(500,) * 10) as receiver:
            lost = (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"]
            watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            assert watch["ended_delivery"] is None
            assert (await gw.get(f"/v1/watches/{watch['id']}")).json()["ended_delivery"] is None
            assert (await gw.delete(f"/v1/dogs/{lost}")).status_code == 204

            async def failed():
                end = (await gw.get(f"/v1/watches/{watch['id']}")).json()["ended_delivery"]
                return end if end["state"] == "failed" else None

            end = await _wait(failed)
        assert (end["attempts"], end["last_status"], end["last_error"]) == (2, 500, "HTTP 500")
        assert end["delivered_at"] is None
        assert [(a["n"], a["status"], a["error"]) for a in end["history"]] == [(n, 500, "HTTP 500") for n in (1, 2)]
        assert [w["ended_delivery"] for w in (await gw.get("/v1/watches")).json()["items"]] == [end]
        assert [h["x-dogsearch-delivery"] for h, _ in receiver.received] == [f"{watch['id']}:{lost}"] * 2


async def test_a_match_retrying_when_its_watch_ends_is_sent_signed_with_a_secret_renewed_since(tmp_path, fake_model):
    """Rex's webhook is down when a found dog matches him, and his report is deleted while that delivery still
    retries: a match found while he was watched is still news, so it keeps its retries beside the end's. His owner
    renews the secret of the ended watch (the old one leaked), and both go out signed with the new one; the watch
    then says its end was delivered, and the inbox that the match was."""
    app = _app(tmp_path, fake_model, webhook_allow_private=True, webhook_max_attempts=20)
    async with serving(app) as gw:
        with Receiver(statuses=(500,) * 1000) as receiver:
            lost = (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"]
            watch = (await gw.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
            found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
            await receiver.wait_for(1)  # its first attempt failed: it retries
            assert (await gw.delete(f"/v1/dogs/{lost}")).status_code == 204
            r = await gw.post(f"/v1/watches/{watch['id']}/secret")
            assert r.status_code == 200, r.text
            secret = r.json()["secret"]
            waiting = (await gw.get(f"/v1/watches/{watch['id']}")).json()["ended_delivery"]
            assert waiting["state"] in ("pending", "sending") and waiting["delivered_at"] is None
            of_match, of_end = f"{watch['id']}:{found}", f"{watch['id']}:{lost}"

            async def each_tried_since():  # an attempt taken before the renewal may have gone out with the old one
                with receiver.lock:
                    return {h["x-dogsearch-delivery"] for h, body in receiver.received
                            if h["x-dogsearch-signature"] == signed(secret, body)} == {of_match, of_end}

            await _wait(each_tried_since)
            receiver.recover()

            async def delivered():
                end = (await gw.get(f"/v1/watches/{watch['id']}")).json()["ended_delivery"]
                [match] = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
                return (end, match["delivery"]) if {end["state"], match["delivery"]["state"]} == {"delivered"} else None

            end, sent = await _wait(delivered)
        last = {h["x-dogsearch-delivery"]: (h, body) for h, body in receiver.received}  # each one's delivered attempt
        events = {key: json.loads(body)["event"] for key, (_, body) in last.items()}
        assert events == {of_match: "watch.match", of_end: "watch.ended"}
        assert all(h["x-dogsearch-signature"] == signed(secret, body) for h, body in last.values())
        assert end["delivered_at"] is not None and end["history"][-1]["status"] == 200
        assert end["history"][0]["status"] == 500 and sent["history"][-1]["status"] == 200


async def test_a_dog_deleted_where_the_watches_were_not_told_is_left_out_of_the_inbox(tmp_path, fake_model):
    """An entry dropped by `dogsearch check --repair --drop-missing` (or a dog deleted before deleting one reached
    the watches): the inbox leaves it out as it is read, rather than show a dog whose photo is a 404."""
    app = _app(tmp_path, fake_model)
    async with serving(app) as gw:
        lost = (await add(gw, solid(RED), status="lost")).json()["id"]
        watch = (await gw.post("/v1/watches", json={"dog_id": lost})).json()
        found = (await add(gw, solid(DARK_RED), status="found")).json()["id"]
        path = f"/v1/watches/{watch['id']}/matches"
        assert [m["dog"]["id"] for m in (await gw.get(path)).json()["items"]] == [found]
        await app.state.parts.gallery.index.delete(found)
        assert (await gw.get(f"/v1/dogs/{found}/image")).status_code == 404
        assert (await gw.get(path)).json()["items"] == []


async def test_a_watch_from_photos_and_a_bulk_job_matches(gw, tmp_path):
    """A watch made from an uploaded photo (no stored dog), without a webhook: its inbox fills from a bulk job too."""
    r = await gw.post("/v1/watches", files=[("image", ("a.jpg", solid(RED)))], data={"min_probability": "0.5"})
    assert r.status_code == 201, r.text
    watch = r.json()
    assert watch["dog_id"] is None and watch["photos"] == 1 and watch["status"] is None
    zipped = tmp_path / "photos.zip"
    import zipfile

    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a/red.jpg", solid(RED))
        z.writestr("a/blue.jpg", solid(BLUE))
    job = (await gw.post("/v1/jobs/index/upload", files={"archive": ("p.zip", zipped.read_bytes())})).json()

    async def done():
        j = (await gw.get(f"/v1/jobs/{job['id']}")).json()
        return j if j["state"] == "done" else None

    assert (await _wait(done))["indexed"] == 2
    inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    assert len(inbox) == 1 and inbox[0]["delivery"] is None and inbox[0]["probability"] > 0.99


async def test_a_dog_marked_again_reaches_the_watch_it_now_matches(tmp_path, fake_model):
    """The detector boxed the large blue dog of a photo; its owner marks the small red one: the watch on a red dog,
    silent at the add, is told about the dog once it is marked."""
    cropped = replace(CALIBRATION, vectors="test-color-grid@dogcrop-m0.3")  # the dogs' crops, not whole photos
    async with serving(_app(tmp_path, fake_model, cropped, detector=True, webhook_allow_private=True)) as gw:
        r = await gw.post("/v1/watches", files=[("image", ("a.png", RED_DOG))], data={"min_probability": "0.5"})
        assert r.status_code == 201, r.text
        watch = r.json()
        dog = (await add(gw, TWO_DOGS, name="mine")).json()
        assert dog["payload"]["box"][0] > 70  # the blue one

        async def inbox():
            return (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]

        await asyncio.sleep(0.3)  # the add's check has run (it runs before the add answers; this is margin)
        assert await inbox() == []
        r = await gw.put(f"/v1/dogs/{dog['id']}/photos/{dog['id']}/box", json={"box": "5,25,55,85"})
        assert r.status_code == 200, r.text
        matches = await _wait(inbox)
        assert [m["dog"]["id"] for m in matches] == [dog["id"]] and matches[0]["probability"] >= 0.5


async def test_near_and_radius_keep_far_dogs_out(gw):
    lost = (await add(gw, solid(RED), status="lost")).json()["id"]
    watch = (await gw.post("/v1/watches", json={"dog_id": lost, "near": "52.52,13.405", "radius_km": 50})).json()
    await add(gw, solid(DARK_RED), status="found", location="48.137,11.575")  # Munich: 500 km away
    near = (await add(gw, solid(DARK_RED, size=(66, 48)), status="found", location="52.4,13.06")).json()["id"]
    await add(gw, solid(DARK_RED, size=(68, 48)), status="found")  # nowhere: left out with a radius
    inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
    assert [m["dog"]["id"] for m in inbox] == [near]


async def test_a_look_alike_that_does_not_stand_out_is_held_back_and_the_dog_itself_alerts(tmp_path, fake_model):
    """Judged as a search judges its first result: a found dark red dog scores about 0.9 against the lost red one, a
    pair probability above the watch's 0.5, but so does a found dark red dog stored before (another dog of the same
    look): it leads by nothing, so no alert. The red dog itself stands out from both and alerts, with the
    probability a search for it shows."""
    ranked = Calibration("test-color-grid", "isotonic", CALIBRATION.params, 0.5, first={"a": 100.0, "b": -3.0})
    app = _app(tmp_path, fake_model, calibration=ranked)
    async with serving(app) as gw:
        lost = (await add(gw, solid(RED), status="lost")).json()["id"]
        await add(gw, solid(DARK_RED, size=(66, 48)), status="found")  # not new to the watch, but in the gallery
        watch = (await gw.post("/v1/watches", json={"dog_id": lost, "min_probability": 0.5})).json()
        alike = (await add(gw, solid(DARK_RED, size=(70, 50)), status="found")).json()["id"]
        found = (await add(gw, solid(RED, size=(80, 60)), status="found")).json()["id"]
        inbox = (await gw.get(f"/v1/watches/{watch['id']}/matches")).json()["items"]
        results = {r["id"]: r for r in (await search(gw, solid(RED), k=3, for_status="lost")).json()["results"]}
    assert [m["dog"]["id"] for m in inbox] == [found]
    assert ranked.probability(results[alike]["score"]) >= 0.5  # by its pair alone, it would have alerted
    assert results[alike]["same_dog"] < 0.5
    assert inbox[0]["probability"] == pytest.approx(results[found]["same_dog"], abs=1e-3)
    assert inbox[0]["probability"] >= 0.5


@pytest.mark.parametrize("body", [
    {"min_probability": 0.5},  # no dog_id
    {"dog_id": "not-a-uuid"},
    {"dog_id": "00000000-0000-0000-0000-000000000000", "min_probability": 1.5},
    {"dog_id": "00000000-0000-0000-0000-000000000000", "surprise": 1},
])
async def test_a_malformed_watch_is_a_422_with_the_reason(gw, body):
    r = await gw.post("/v1/watches", json=body)
    assert r.status_code == 422 and r.json()["detail"], r.text


async def test_bad_watch_requests(gw):
    assert (await gw.post("/v1/watches", content=b"x", headers={"content-type": "text/plain"})).status_code == 415
    r = await gw.post("/v1/watches", json={"dog_id": "00000000-0000-0000-0000-000000000000"})
    assert r.status_code == 404
    lost = (await add(gw, solid(RED), status="lost")).json()["id"]
    r = await gw.post("/v1/watches", json={"dog_id": lost, "radius_km": 5})
    assert r.status_code == 422 and "near" in r.json()["detail"]
    r = await gw.post("/v1/watches", json={"dog_id": lost, "status": "misplaced"})
    assert r.status_code == 422 and "status" in r.json()["detail"]
    r = await gw.post("/v1/watches", files=[("image", ("a.jpg", b"not a photo"))])
    assert r.status_code in (415, 422)


async def test_a_dog_watched_again_on_the_same_conditions_is_a_409_naming_the_watch(gw):
    # A second click, or a request sent again after its answer was lost, made a second watch: every alert twice.
    lost = (await add(gw, solid(RED), status="lost")).json()["id"]
    first = await gw.post("/v1/watches", json={"dog_id": lost, "min_probability": 0.6})
    assert first.status_code == 201, first.text
    again = await gw.post("/v1/watches", json={"dog_id": lost, "min_probability": 0.6})
    assert again.status_code == 409 and again.json()["code"] == "already_watching"
    assert first.json()["id"] in again.json()["detail"]
    # named, for a client to act on: read it, or give it a new secret (the first one lost with the first answer)
    assert again.json()["watch_id"] == first.json()["id"]
    assert again.json()["watch_url"] == first.headers["location"]
    other = await gw.post("/v1/watches", json={"dog_id": lost, "min_probability": 0.9})  # other conditions: welcome
    assert other.status_code == 201, other.text
    assert len((await gw.get("/v1/watches")).json()["items"]) == 2


async def test_a_lost_secret_is_replaced_and_signs_the_next_deliveries(keyed):
    """The secret is shown once; its owner lost it. A new one, shown once, signs every delivery from then on; the
    watch keeps its id and inbox, and what was sent before stays as it was signed."""
    alice, bob = keyed["alice"], keyed["bob"]
    with Receiver() as receiver:
        lost = (await add(alice, solid(RED), status="lost")).json()["id"]
        made = (await alice.post("/v1/watches", json={"dog_id": lost, "webhook_url": receiver.url})).json()
        await add(alice, solid(DARK_RED), status="found")
        [(_, before)] = await receiver.wait_for(1)

        assert (await bob.post(f"/v1/watches/{made['id']}/secret")).status_code == 404  # not his
        r = await alice.post(f"/v1/watches/{made['id']}/secret")
        assert r.status_code == 200, r.text
        renewed = r.json()
        assert renewed["id"] == made["id"] and renewed["secret"].startswith("whsec_")
        assert renewed["secret"] != made["secret"]
        assert "secret" not in (await alice.get(f"/v1/watches/{made['id']}")).json()
        await add(alice, solid(DARK_RED, size=(66, 48)), status="sighted")
        (first, second) = await receiver.wait_for(2)

    assert first[0]["x-dogsearch-signature"] == signed(made["secret"], before)  # as it was sent
    assert second[0]["x-dogsearch-signature"] == signed(renewed["secret"], second[1])
    inbox = (await alice.get(f"/v1/watches/{made['id']}/matches")).json()["items"]
    assert [m["delivery"]["state"] for m in inbox] == ["delivered", "delivered"]


async def test_without_a_calibration_a_watch_is_refused(tmp_path, fake_model):
    app = fake_all_in_one(tmp_path / "data", fake_model)
    async with serving(app) as client:
        dog = (await add(client, solid(RED))).json()["id"]
        r = await client.post("/v1/watches", json={"dog_id": dog})
    assert r.status_code == 409 and r.json()["code"] == "not_calibrated"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]:8000/hook", "http://[::ffff:127.0.0.1]/hook", "http://localhost/hook", "http://192.168.1.1/",
    "ftp://example.org/hook", "http://user:pw@example.org/hook", "http://0.0.0.0/",
])
async def test_webhooks_to_private_addresses_are_refused(tmp_path, fake_model, url):
    app = _app(tmp_path, fake_model)  # webhook_allow_private off: the default
    async with serving(app) as client:
        dog = (await add(client, solid(RED))).json()["id"]
        r = await client.post("/v1/watches", json={"dog_id": dog, "webhook_url": url})
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "webhook_refused"
        assert (await client.get("/v1/watches")).json()["items"] == []


async def test_watches_are_their_owners(keyed):
    alice, bob, eve, root = (keyed[k] for k in ("alice", "bob", "eve", "root"))
    dog = (await add(alice, solid(RED), status="lost")).json()["id"]
    made = (await alice.post("/v1/watches", json={"dog_id": dog}))
    assert made.status_code == 201, made.text
    wid = made.json()["id"]
    assert "secret" not in (await alice.get(f"/v1/watches/{wid}")).json()  # shown once
    for path in (f"/v1/watches/{wid}", f"/v1/watches/{wid}/matches"):
        assert (await bob.get(path)).status_code == 404
        assert (await root.get(path)).status_code == 200
    assert (await bob.get("/v1/watches")).json()["items"] == []
    assert [w["id"] for w in (await alice.get("/v1/watches")).json()["items"]] == [wid]
    assert [w["id"] for w in (await root.get("/v1/watches")).json()["items"]] == [wid]  # an admin sees every one
    assert (await bob.delete(f"/v1/watches/{wid}")).status_code == 404
    assert (await eve.post("/v1/watches", json={"dog_id": dog})).status_code == 403  # search scope: no watches
    assert (await httpx.AsyncClient(transport=alice._transport, base_url="http://gw").get(
        "/v1/watches")).status_code == 401
    # at most max_watches_per_key (2) a key
    assert (await alice.post("/v1/watches", json={"dog_id": dog, "min_probability": 0.6})).status_code == 201
    r = await alice.post("/v1/watches", json={"dog_id": dog, "min_probability": 0.7})
    assert r.status_code == 409 and r.json()["code"] == "too_many_watches"
    assert (await bob.post("/v1/watches", json={"dog_id": dog})).status_code == 201  # bob has his own
    assert (await alice.delete(f"/v1/watches/{wid}")).status_code == 204
    assert (await alice.get(f"/v1/watches/{wid}")).status_code == 404
    assert (await alice.post("/v1/watches", json={"dog_id": dog})).status_code == 201
