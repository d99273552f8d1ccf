"""A dog that `dogsearch check --repair --drop-missing` leaves without an entry (its photo lost) is gone as a delete
through the API leaves it: the watches made from it end, and the gateway delivers each end to its webhook; a dog
with another photo left stays, and so do its watches. An open watch of a dog deleted without the watch store being
told is listed by `dogsearch check` and ended by --repair."""
from __future__ import annotations

import asyncio
import json
import sqlite3

from dogsearch import cli
from dogsearch.gallery.photos import PhotoStore
from dogsearch.services.layout import DataLayout
from dogsearch.watches.store import WatchStore
from tests.fakes import serving
from tests.gateway.helpers import BLUE, RED, add
from tests.gateway.test_watches import _app
from tests.images import solid
from tests.watches.receiver import Receiver, signed


async def watched(gw, receiver: Receiver) -> tuple[str, dict, str, dict]:
    """Rex, lost and watched with a webhook, and Bella, lost and watched without: (rex, his watch, bella, hers)."""
    rex = (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"]
    made = (await gw.post("/v1/watches", json={"dog_id": rex, "webhook_url": receiver.url})).json()
    bella = (await add(gw, solid(BLUE), name="Bella", status="lost")).json()["id"]
    kept = (await gw.post("/v1/watches", json={"dog_id": bella})).json()
    return rex, made, bella, kept


async def ended_and_told(tmp_path, fake_model, receiver: Receiver, rex: str, made: dict, kept: dict) -> None:
    """Rex's watch ended and Bella's open in the watch store; the gateway, started again, sends the end to its
    webhook."""
    store = WatchStore(tmp_path / "data" / "watches" / "watches.sqlite3")
    try:
        ended_at = store.get(made["id"]).ended_at
        assert ended_at is not None and store.get(kept["id"]).ended_at is None
        assert [w.id for w in store.open_watches()] == [kept["id"]]
    finally:
        store.close()
    async with serving(_app(tmp_path, fake_model, webhook_allow_private=True)) as gw:
        [(headers, body)] = await receiver.wait_for(1)
        assert (await gw.get(f"/v1/watches/{made['id']}")).json()["ended_at"] == ended_at
    assert json.loads(body) == {"event": "watch.ended", "watch": made["id"], "watched_dog": rex, "ended_at": ended_at,
                                "reason": "dog_deleted"}
    assert headers["x-dogsearch-signature"] == signed(made["secret"], body)


async def test_a_dog_dropped_by_check_ends_its_watches_and_its_webhook_is_told(tmp_path, fake_model, capsys):
    root = tmp_path / "data"
    with Receiver() as receiver:
        async with serving(_app(tmp_path, fake_model, webhook_allow_private=True)) as gw:
            rex, made, bella, kept = await watched(gw, receiver)
            # Bella: two photos, the first lost; the other stays
            more = await gw.post(f"/v1/dogs/{bella}/photos", files={"image": ("p.jpg", solid((40, 40, 210)))})
            assert more.status_code == 201, more.text
        photos = PhotoStore(DataLayout(root).photos)
        for dog in (rex, bella):
            photos.original(dog, "JPEG").unlink()

        args = ["check", "--data-dir", str(root), "--json", "--repair", "--drop-missing"]
        assert await asyncio.to_thread(cli.main, args) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["gallery"]["dropped_entries"] == 2 and report["watches"]["ended"] == 1, report
        await ended_and_told(tmp_path, fake_model, receiver, rex, made, kept)


async def test_an_open_watch_of_a_dog_deleted_without_telling_the_watch_store_is_ended_by_repair(tmp_path, fake_model,
                                                                                                 capsys):
    """The gateway deleted Rex but could not write to the watch store (logged; the dog is gone all the same): his
    watch stays open. `check` lists it, `--repair` ends it as the delete would have, and its webhook is told."""
    root = tmp_path / "data"
    with Receiver() as receiver:
        app = _app(tmp_path, fake_model, webhook_allow_private=True)
        async with serving(app) as gw:
            rex, made, _, kept = await watched(gw, receiver)

            def locked(*_):
                raise sqlite3.OperationalError("database is locked")

            app.state.parts.watches.store.dog_deleted = locked
            assert (await gw.delete(f"/v1/dogs/{rex}")).status_code == 204
            assert (await gw.get(f"/v1/watches/{made['id']}")).json()["ended_at"] is None

        assert await asyncio.to_thread(cli.main, ["check", "--data-dir", str(root), "--json"]) == 1
        report = json.loads(capsys.readouterr().out)["watches"]
        assert report["of_gone_dogs"] == [{"watch": made["id"], "dog_id": rex}] and report["ended_of_gone"] == 0
        assert await asyncio.to_thread(cli.main, ["check", "--data-dir", str(root)]) == 1
        assert "1 open watches of dogs no longer stored; not all fixed: --repair" in capsys.readouterr().out

        assert await asyncio.to_thread(cli.main, ["check", "--data-dir", str(root), "--repair"]) == 0
        assert "1 open watches of dogs no longer stored (1 ended)" in capsys.readouterr().out
        await ended_and_told(tmp_path, fake_model, receiver, rex, made, kept)
    assert await asyncio.to_thread(cli.main, ["check", "--data-dir", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["watches"]["of_gone_dogs"] == []
