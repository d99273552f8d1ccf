"""`dogsearch check [--repair] [--json]`: entries without their photo, photo files without an entry, vectors of
another model than the collection's, photos without their look-alike hash, jobs that will never finish, checks of new
dogs against the watches that were given up (dogsearch/gallery/check.py, dogsearch/jobs/check.py,
dogsearch/watches/tasks.py).

Where: the vectors through a running search service (--search-url), else the search service started in this process
on --data-dir's vectors/ (or on the Qdrant server DOGSEARCH_SEARCH_QDRANT_URL names; the embedded engine refuses
while a server has it open: stop it, or use --search-url); the photos in --photos (default --data-dir's photos/);
the jobs and the filed hashes in Redis when DOGSEARCH_BROKER_URL is set, else in --data-dir's jobs/ (the hashes are
not checked against a search service by URL without a broker: where its gateway files them is not known here); the
watches in the gateway's watch store (DOGSEARCH_GATEWAY_WATCHES_PATH, else watches/ beside the photos; opened, never
made). --repair runs the storage layout's upgrade a gateway runs at its start (dogs an older release stored), and gives
a dog without a cover (an older --drop-missing deleted the cover's entry alone) one, through the gateway's gallery;
--drop-missing deletes through it too, as the API's deletes of the lost photos would: a dog that keeps another photo
keeps its cover, one that keeps none is deleted and its watches end. Open watches of a dog no entry names any more
(its delete could not tell the watch store, or came from a version before deletes ended watches) are listed, and
ended by --repair."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


def add_parser(sub) -> None:
    check = sub.add_parser("check", help="find (and with --repair fix) entries without photos, photos without "
                                         "entries, vectors of another model, stuck jobs, given-up watch checks")
    check.add_argument("--repair", action="store_true",
                       help="remove orphan photo files, give dogs without a cover one, upgrade dogs of an older "
                            "release's storage layout, hash and file photos without their look-alike hash, fail "
                            "stuck jobs, run given-up watch checks again here, end the open watches of dogs no longer "
                            "stored (entries without photos: see --drop-missing)")
    check.add_argument("--drop-missing", action="store_true",
                       help="with --repair: also delete entries whose photo is missing, as deleting those photos "
                            "through the API would (without it they are reported, and an upload of the same photo "
                            "restores it): a dog that keeps another photo keeps its cover, one left without any is "
                            "deleted and its watches end")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.add_argument("--data-dir", type=Path, default=Path(".data"), help="the all-in-one data directory")
    check.add_argument("--search-url", help="a running search service (default: one in this process on DATA_DIR)")
    check.add_argument("--photos", type=Path, help="the photo store (default DATA_DIR/photos)")
    check.add_argument("--grace-s", type=float, default=600.0,
                       help="photo files younger than this are never orphans (an upload in flight; default 600)")
    check.add_argument("--stuck-after-s", type=float,
                       help="a job without progress this long is stuck "
                            "(default: twice DOGSEARCH_JOBS_VISIBILITY_TIMEOUT_S)")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dogsearch.core.errors import DogsearchError
    from dogsearch.core.logs import configure_logging
    from dogsearch.search.contract import StoreError

    configure_logging("WARNING")
    if args.drop_missing and not args.repair:
        print("dogsearch check: --drop-missing goes with --repair", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(check(args))
    except (DogsearchError, StoreError) as exc:
        print(f"dogsearch check: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else summary(report))
    return 0 if report["ok"] else 1


async def check(args: argparse.Namespace) -> dict[str, Any]:
    from dogsearch.gallery.check import check_gallery
    from dogsearch.gallery.photos import PhotoStore
    from dogsearch.services.gateway.settings import GatewaySettings
    from dogsearch.services.layout import DataLayout

    layout = DataLayout(args.data_dir)
    photos = PhotoStore(args.photos or layout.photos)
    settings = GatewaySettings(data_dir=photos.root)  # the gateway's on these photos: its watch store, its limits
    store = await asyncio.to_thread(_job_store, layout, args.search_url)
    try:
        async with (_index(args.search_url, layout) as index, _watch_store(settings, index) as watch_store,
                    _repairing(settings, index, store, watch_store, args.repair) as (repairer, ended)):
            model = await _collection_model(index)
            with (_bar("entries", await _count(index)) as entries, _bar("photo files", None) as files,
                  _bar("photos hashed", None) as hashed):
                bars = {"entries": entries, "files": files, "hashes": hashed}
                gallery = await check_gallery(index, photos, model, repair=args.repair, gallery=repairer,
                                              drop_missing=args.drop_missing, grace_s=args.grace_s, hashes=store,
                                              progress=lambda kind, n: bars[kind].update(n))
            watches = await _check_watches(watch_store, index, args.repair, settings) | {"ended": sum(ended)}
        jobs = await asyncio.to_thread(_check_jobs, store, args.repair, args.stuck_after_s)
    finally:
        if store is not None:
            store.close()
    left = (len(gallery.orphan_files) - gallery.removed_files + len(gallery.missing_photos) - gallery.dropped_entries
            + len(gallery.other_model) + len(gallery.without_cover) - gallery.covers_given
            + gallery.old_layout - gallery.upgraded
            + gallery.unhashed - gallery.hashed + gallery.unfiled - gallery.filed
            + gallery.unmarked_copies - gallery.marked
            + len(jobs["stuck"]) - jobs["failed"]
            + len(watches["given_up"]) - watches["checked_again"]
            + len(watches["of_gone_dogs"]) - watches["ended_of_gone"])
    return {"ok": left == 0, "repair": args.repair, "gallery": gallery.as_dict(), "jobs": jobs, "watches": watches}


def summary(report: dict[str, Any]) -> str:
    """One line of counts, then a line for each given-up watch check (when, and why)."""
    g, j, w = report["gallery"], report["jobs"], report["watches"]
    missing = len(g["missing_photos"])
    fixes = {
        "orphans": f" ({g['removed_files']} removed)" if report["repair"] else "",
        "missing": (f" ({g['dropped_entries']} dropped, {w['ended']} watches of their dogs ended)"
                    if g["dropped_entries"]
                    else " (upload their photos again, or --repair --drop-missing)" if missing else ""),
        "covers": f" ({g['covers_given']} given one)" if report["repair"] else "",
        "old": f" ({g['upgraded']} upgraded)" if report["repair"] else
        " (a gateway's start upgrades them, as --repair does)" if g["old_layout"] else "",
        "stuck": f" ({j['failed']} failed)" if report["repair"] else "",
        "given_up": f" ({w['checked_again']} checked again)" if report["repair"] else "",
        "gone": f" ({w['ended_of_gone']} ended)" if report["repair"] else "",
    }
    if g["hashes_checked"]:
        hashed, filed, marked = ((f" ({g['hashed']} hashed)", f" ({g['filed']} filed)", f" ({g['marked']} marked)")
                                 if report["repair"] else ("", "", ""))
        hashes = (f"{g['unhashed']} photos without their look-alike hash{hashed}, {g['unfiled']} not filed{filed}, "
                  f"{g['unmarked_copies']} unmarked copies of older photos{marked}")
    else:
        hashes = "look-alike hashes not checked (no job store)"
    repairable = (g["orphan_files"] or g["without_cover"] or g["old_layout"] or g["unhashed"] or g["unfiled"]
                  or g["unmarked_copies"] or j["stuck"] or w["given_up"] or w["of_gone_dogs"])
    end = ("" if report["ok"] else "; not all fixed" + (
        # the usual case after a broker is turned on for a gallery: its old photos' hashes are not in Redis
        ": --repair removes the orphan files, gives the dogs without a cover one, upgrades the older release's dogs, "
        "hashes and files the photos, marks the copies, fails the stuck jobs, runs the given-up watch checks again "
        "and ends the watches of dogs no longer stored"
        if repairable and not report["repair"] else ""))
    given_up = [f"watch check {c['key']} of {len(c['entries'])} new dogs, given up {c['gave_up_at']}: "
                f"{c['reason'] or 'why was not kept (given up by an older version)'}" for c in w["given_up"]]
    return "\n".join([
        f"checked {g['entries']} entries and {g['files']} photo files: {missing} without their photo"
        f"{fixes['missing']}, {len(g['orphan_files'])} orphan photo files{fixes['orphans']}, "
        f"{len(g['without_cover'])} dogs without a cover{fixes['covers']}, {g['old_layout']} dogs of an older "
        f"release's storage layout{fixes['old']}, {len(g['other_model'])} of another model than {g['model']!r}, "
        f"{hashes}, "
        f"{len(j['stuck'])} stuck jobs{fixes['stuck']}, {len(w['given_up'])} given-up watch checks"
        f"{fixes['given_up']}, {len(w['of_gone_dogs'])} open watches of dogs no longer stored{fixes['gone']}{end}",
        *given_up])


def _bar(desc: str, total: int | None):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="", disable=not sys.stderr.isatty())


class _index:
    """The search service as the Index contract: by URL, or started in this process on the data directory."""

    def __init__(self, url: str | None, layout) -> None:
        self.url, self.layout = url, layout

    async def __aenter__(self):
        from dogsearch.services.search.client import SearchClient

        if self.url:
            from dogsearch.services.gateway.settings import GatewaySettings

            # the search service of a deployment asks its callers for the internal key, as the gateway's
            token = GatewaySettings().internal_secret
            self.app, self.client = None, SearchClient(self.url, timeout=120, token=token)
            return self.client
        from dogsearch.services.search.app import create_app
        from dogsearch.services.search.settings import SearchSettings

        self.app = create_app(SearchSettings(data_dir=self.layout.vectors))
        self.lifespan = self.app.router.lifespan_context(self.app)
        await self.lifespan.__aenter__()
        self.client = SearchClient("http://search", app=self.app, timeout=120)
        return self.client

    async def __aexit__(self, *exc) -> None:
        await self.client.aclose()
        if self.app is not None:
            await self.lifespan.__aexit__(*exc)


async def _collection_model(index) -> str | None:
    from dogsearch.core.errors import NotFound

    try:
        return (await index.collection())["model"]
    except NotFound:
        return None


async def _count(index) -> int | None:
    from dogsearch.core.errors import DogsearchError

    try:
        return await index.count()
    except DogsearchError:
        return None


def _job_store(layout, search_url: str | None):
    """The job store the services use (where jobs and photos' hashes are): Redis beside the broker, else the data
    directory's SQLite file, made as the gateway would when the vectors are this process's (a gateway on this data
    directory files its photos' hashes there); None for a search service by URL without a broker."""
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.jobs.store import RedisJobStore, SqliteJobStore

    settings = JobsSettings()
    if settings.broker_url:
        return RedisJobStore(settings.broker_url)
    if (layout.jobs / "jobs.sqlite3").exists() or not search_url:
        return SqliteJobStore(layout.jobs / "jobs.sqlite3")
    return None


@asynccontextmanager
async def _watch_store(settings, index):
    """The watches in the store a gateway on these photos made (this process makes none); None where none did."""
    from dogsearch.services.gateway.deps import build_watches
    from dogsearch.services.gateway.samedog import SameDog
    from dogsearch.watches.store import StoreMissing

    try:
        watches = await asyncio.to_thread(build_watches, settings, index, SameDog(settings), make=False)
    except StoreMissing:
        yield None
        return
    try:
        yield watches
    finally:
        await asyncio.to_thread(watches.store.close)


@asynccontextmanager
async def _repairing(settings, index, store, watches, repair: bool):
    """With `repair`: the gateway's gallery on `index`, which gives covers and deletes as the API does (it embeds
    nothing here: no embedder), taking turns with the gateway replicas and the workers where a broker is set,
    re-pointing copies by the hashes filed in `store`, and ending the watches of each dog it deletes; and how many
    each delete ended."""
    from dogsearch.jobs.settings import JobsSettings
    from dogsearch.services.gateway.deps import build_gallery, close_locks

    ended: list[int] = []
    if not repair:
        yield None, ended
        return
    gallery = build_gallery(settings, None, index, broker_url=JobsSettings().broker_url)
    gallery.ingest.hashes = store
    if watches is not None:
        async def dog_deleted(dog_id: str) -> None:
            ended.append(await watches.dog_deleted(dog_id))
        gallery.on_deleted = dog_deleted
    try:
        yield gallery, ended
    finally:
        await close_locks(gallery)


async def _check_watches(watches, index, repair: bool, settings) -> dict[str, Any]:
    """In the watch store: the open watches of dogs no entry names any more (`of_gone_dogs`), with `repair` ended as
    a delete ends them (Watches.dog_deleted: their webhooks told); then the checks of new dogs against the watches
    that were given up (each stopped its worker, or met its search service down for too long: their alerts are not
    sent), with `repair` run again here on `index` (a check that stopped its workers may stop this process too: it
    is forgotten only once it ran)."""
    if watches is None:  # no gateway kept watches here
        return {"store": None, "given_up": [], "checked_again": 0, "of_gone_dogs": [], "ended_of_gone": 0}
    of_gone = await _of_gone_dogs(watches, index)
    gone = sorted({w["dog_id"] for w in of_gone})
    ended = sum([await watches.dog_deleted(dog) for dog in gone]) if repair else 0
    given_up = await asyncio.to_thread(watches.store.given_up_checks)
    again = await watches.check_again(given_up) if repair and given_up else 0
    return {"store": str(settings.watches_file), "given_up": given_up, "checked_again": again, "of_gone_dogs": of_gone,
            "ended_of_gone": ended}


async def _of_gone_dogs(watches, index) -> list[dict[str, str]]:
    """{"watch", "dog_id"} of each open watch made from a dog that no entry names."""
    from dogsearch.search.contract import CollectionMissing

    open_watches = await asyncio.to_thread(watches.store.open_watches)
    gone = {}
    for dog in sorted({w.dog_id for w in open_watches if w.dog_id}):
        try:
            gone[dog] = not await index.count({"dog_id": dog})
        except CollectionMissing:  # nothing stored
            gone[dog] = True
    return [{"watch": w.id, "dog_id": w.dog_id} for w in open_watches if w.dog_id and gone[w.dog_id]]


def _check_jobs(store, repair: bool, stuck_after_s: float | None) -> dict[str, Any]:
    from dogsearch.jobs.check import fail_stuck, stuck_jobs
    from dogsearch.jobs.settings import JobsSettings

    after = stuck_after_s if stuck_after_s is not None else 2 * JobsSettings().visibility_timeout_s
    if store is None:
        return {"stuck_after_s": after, "stuck": [], "failed": 0}
    stuck = stuck_jobs(store, after)
    return {"stuck_after_s": after, "stuck": stuck, "failed": fail_stuck(store, stuck, after) if repair else 0}
