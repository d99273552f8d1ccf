"""A dog that `dogsearch check --repair --drop-missing` leaves without an entry (its photo lost) is gone as a delete
through the API leaves it: the watches made from it end, and the gateway delivers each end to its webhook; a dog
with another photo left stays, and so do its watches."""
from __future__ import annotations

import asyncio
import json

from dogsearch import cli
from dogsearch.gallery.photos import PhotoStore
from dogsearch.services.layout import DataLayout
from dogsearch.watches.store import WatchStore
from tests.fakes import serving
from tests.gateway.helpers import BLUE, RED, add
from tests.gateway.test_watches import _app
from tests.images import solid
from tests.watches.receiver import Receiver, signed


async def test_a_dog_dropped_by_check_ends_its_watches_and_its_webhook_is_told(tmp_path, fake_model, capsys):
    root = tmp_path / "data"
    with Receiver() as receiver:
        app = _app(tmp_path, fake_model, webhook_allow_private=True)
        async with serving(app) as gw:
            rex = (await add(gw, solid(RED), name="Rex", status="lost")).json()["id"]
            made = (await gw.post("/v1/watches", json={"dog_id": rex, "webhook_url": receiver.url})).json()
            # Bella: two photos, the first lost; the other stays
            bella = (await add(gw, solid(BLUE), name="Bella", status="lost")).json()["id"]
            more = await gw.post(f"/v1/dogs/{bella}/photos", files={"image": ("p.jpg", solid((40, 40, 210)))})
            assert more.status_code == 201, more.text
            kept = (await gw.post("/v1/watches", json={"dog_id": bella})).json()
        photos = PhotoStore(DataLayout(root).photos)
        for dog in (rex, bella):
            photos.original(dog, "JPEG").unlink()

        args = ["check", "--data-dir", str(root), "--json", "--repair", "--drop-missing"]
        assert await asyncio.to_thread(cli.main, args) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["gallery"]["dropped_entries"] == 2 and report["watches"]["ended"] == 1, report
        store = WatchStore(root / "watches" / "watches.sqlite3")
        try:
            ended_at = store.get(made["id"]).ended_at
            assert ended_at is not None and store.get(kept["id"]).ended_at is None
            assert [w.id for w in store.open_watches()] == [kept["id"]]
        finally:
            store.close()

        async with serving(_app(tmp_path, fake_model, webhook_allow_private=True)) as gw:  # the gateway sends it
            [(headers, body)] = await receiver.wait_for(1)
            assert (await gw.get(f"/v1/watches/{made['id']}")).json()["ended_at"] == ended_at
    assert json.loads(body) == {"event": "watch.ended", "watch": made["id"], "watched_dog": rex, "ended_at": ended_at,
                                "reason": "dog_deleted"}
    assert headers["x-dogsearch-signature"] == signed(made["secret"], body)
