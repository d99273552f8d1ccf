"""Reports over the public API: a dog's status, place and time (POST /v1/dogs, PATCH), searches by place, time and
status, lost <-> found, and the distance and time on each result."""
from __future__ import annotations

import pytest
from PIL import Image

from tests.gateway.helpers import BLUE, DARK_RED, GREEN, RED, add, search
from tests.images import encode, solid

BERLIN, POTSDAM, HAMBURG = "52.52,13.405", "52.39,13.065", "53.551,9.993"


async def reported(gateway, color, **fields) -> str:
    r = await add(gateway, solid(color), **fields)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
async def reports(gateway):
    """Four dogs, each reported somewhere at some time, and one without a report."""
    return {
        "lost": await reported(gateway, RED, name="lost", status="lost", location=BERLIN,
                               seen_at="2026-11-30T18:05:00+01:00"),
        "found": await reported(gateway, DARK_RED, name="found", status="found", location=POTSDAM,
                                seen_at="2026-12-01T09:00:00Z"),
        "sighted": await reported(gateway, GREEN, name="sighted", status="sighted", location=HAMBURG,
                                  seen_at="2026-11-02T10:00"),
        "home": await reported(gateway, (200, 30, 30), name="home", status="home", location=BERLIN,
                               seen_at="2026-12-01T12:00:00Z"),
        "plain": await reported(gateway, BLUE, name="plain"),
    }


def names(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [hit["payload"]["name"] for hit in r.json()["results"]]


async def test_a_report_is_stored_in_one_form_and_changed_by_patch(gateway, reports):
    dog = (await gateway.get(f"/v1/dogs/{reports['lost']}")).json()
    assert dog["payload"]["status"] == "lost"
    assert dog["payload"]["location"] == {"lat": 52.52, "lon": 13.405}
    assert dog["payload"]["seen_at"] == "2026-11-30T17:05:00+00:00"  # normalised to UTC
    r = await gateway.patch(f"/v1/dogs/{reports['plain']}",
                            json={"status": "found", "location": {"lat": -33.9, "lon": 151.2},
                                  "seen_at": "2026-12-02T08:00:00+11:00"})
    assert r.status_code == 200, r.text
    assert {k: r.json()["payload"][k] for k in ("status", "location", "seen_at")} == {
        "status": "found", "location": {"lat": -33.9, "lon": 151.2}, "seen_at": "2026-12-01T21:00:00+00:00"}
    # home ends the report: the dog is offered neither as lost nor as found
    await gateway.patch(f"/v1/dogs/{reports['lost']}", json={"status": "home"})
    assert "lost" not in names(await search(gateway, solid(RED), for_status="found"))


@pytest.mark.parametrize(("how", "fields", "words"), [
    ("add", {"status": "stolen"}, "one of lost"),
    ("add", {"location": "52.5"}, "lat,lon"),
    ("add", {"location": "91,13"}, "latitude -90..90"),
    ("add", {"location": "52,181"}, "longitude -180..180"),
    ("add", {"seen_at": "last tuesday"}, "ISO 8601"),
    ("patch", {"location": {"lat": 52}}, "lat,lon"),
    ("patch", {"location": {"lat": 52, "lon": 200}}, "longitude -180..180"),
    ("patch", {"seen_at": "2026-13-01"}, "ISO 8601"),
    ("patch", {"status": ["lost"]}, "one of lost"),
])
async def test_bad_reports_are_422_with_the_reason(gateway, how, fields, words):
    if how == "add":
        r = await add(gateway, solid(RED), **fields)
    else:
        dog = await reported(gateway, RED)
        r = await gateway.patch(f"/v1/dogs/{dog}", json=fields)
    assert r.status_code == 422 and words in r.json()["detail"], r.text


async def test_search_by_place_time_and_status(gateway, reports):
    everyone = names(await search(gateway, solid(RED), k=10))
    assert set(everyone) == {"lost", "found", "sighted", "home", "plain"}
    assert names(await search(gateway, solid(RED), near=BERLIN, radius_km="30", k=10)) == ["lost", "home", "found"]
    assert names(await search(gateway, solid(RED), near=BERLIN, radius_km="10", k=10)) == ["lost", "home"]
    assert set(names(await search(gateway, solid(RED), near=BERLIN, radius_km="300", k=10))) == {
        "lost", "found", "sighted", "home"}  # the dog seen nowhere is left out
    assert set(names(await search(gateway, solid(RED), seen_after="2026-11-30", k=10))) == {"lost", "found", "home"}
    # a bare date as seen_before keeps the whole day
    assert set(names(await search(gateway, solid(RED), seen_before="2026-11-30", k=10))) == {"lost", "sighted"}
    assert names(await search(gateway, solid(RED), seen_after="2026-11-30T17:05:00Z",
                              seen_before="2026-11-30T18:05:00+01:00", k=10)) == ["lost"]
    assert set(names(await search(gateway, solid(RED), status="lost,sighted", k=10))) == {"lost", "sighted"}
    r = await gateway.post("/v1/search", files={"image": ("q.jpg", solid(RED))},
                           data={"status": ["found", "home"], "k": "10"})
    assert set(names(r)) == {"found", "home"} and r.json()["statuses"] == ["found", "home"]
    # all of them together, and with the older filters
    assert names(await search(gateway, solid(RED), near=BERLIN, radius_km="30", status="found",
                              seen_after="2026-12-01", filter='{"name": "found"}')) == ["found"]


async def test_results_show_distance_and_time(gateway, reports):
    body = (await search(gateway, solid(RED), near=BERLIN, k=10)).json()  # near alone: distances, no radius
    by_name = {hit["payload"]["name"]: hit for hit in body["results"]}
    assert len(by_name) == 5
    assert by_name["lost"]["distance_km"] == 0 and by_name["home"]["distance_km"] == 0
    assert 26 < by_name["found"]["distance_km"] < 28  # Berlin -> Potsdam
    assert 250 < by_name["sighted"]["distance_km"] < 260
    assert by_name["plain"]["distance_km"] is None and by_name["plain"]["seen_at"] is None
    assert by_name["lost"]["seen_at"] == "2026-11-30T17:05:00+00:00"
    plain = (await search(gateway, solid(RED), k=10)).json()["results"]
    assert all(hit["distance_km"] is None for hit in plain)  # no place asked about


async def test_lost_and_found_are_matched_to_each_other(gateway, reports):
    # A found dog is looked for among lost ones; a lost one among found, sighted and shelter reports.
    r = await search(gateway, solid(DARK_RED), for_status="found", k=10)
    assert names(r) == ["lost"] and r.json()["statuses"] == ["lost"]
    r = await search(gateway, solid(RED), for_status="lost", k=10)
    assert names(r) == ["found", "sighted"] and r.json()["statuses"] == ["found", "sighted", "shelter"]
    assert names(await search(gateway, solid(RED), for_status="lost", near=BERLIN, radius_km="100")) == ["found"]
    # More like this for a reported dog offers its counterparts only, measured from where it was seen
    r = await gateway.get(f"/v1/dogs/{reports['found']}/similar", params={"k": 10})
    assert names(r) == ["lost"] and r.json()["results"][0]["distance_km"] == pytest.approx(27, abs=1)
    r = await gateway.get(f"/v1/dogs/{reports['lost']}/similar", params={"k": 10, "radius_km": 100})
    assert names(r) == ["found"]  # radius around the dog's own location
    r = await gateway.get(f"/v1/dogs/{reports['lost']}/similar", params={"k": 10, "counterparts": "false"})
    assert set(names(r)) == {"found", "sighted", "home", "plain"}
    # a dog without a report (or at home) gets every dog, as before
    assert len(names(await gateway.get(f"/v1/dogs/{reports['plain']}/similar", params={"k": 10}))) == 4
    assert len(names(await gateway.get(f"/v1/dogs/{reports['home']}/similar", params={"k": 10}))) == 4


@pytest.mark.parametrize(("fields", "words"), [
    ({"radius_km": "5"}, "radius_km needs near"),
    ({"near": BERLIN, "radius_km": "0"}, "radius_km: above 0"),
    ({"near": BERLIN, "radius_km": "20001"}, "at most 20000"),
    ({"near": BERLIN, "radius_km": "nan"}, "radius_km"),
    ({"near": "52.5"}, "lat,lon"),
    ({"near": "95,13"}, "latitude -90..90"),
    ({"seen_after": "soon"}, "seen_after: a date"),
    ({"seen_before": "2026-02-30"}, "seen_before"),
    ({"seen_after": "2026-12-02", "seen_before": "2026-12-01"}, "later than seen_before"),
    ({"status": "stolen"}, "status: one of"),
    ({"for_status": "home"}, "report is closed"),
    ({"for_status": "gone"}, "for_status: one of"),
    ({"for_status": "lost", "status": "found"}, "not both"),
    ({"status": "lost", "filter": '{"status": "found"}'}, "given in filter"),
])
async def test_bad_search_fields_are_422_with_the_reason(gateway, fields, words):
    await reported(gateway, RED, status="lost")
    r = await search(gateway, solid(RED), **fields)
    assert r.status_code == 422 and words in str(r.json()["detail"]), r.text


async def test_more_like_this_checks_its_fields_too(gateway):
    plain = await reported(gateway, RED)
    r = await gateway.get(f"/v1/dogs/{plain}/similar", params={"radius_km": 5})  # no place to be around
    assert r.status_code == 422 and "radius_km needs near" in r.json()["detail"]
    r = await gateway.get(f"/v1/dogs/{plain}/similar", params={"seen_after": "x"})
    assert r.status_code == 422 and "seen_after" in r.json()["detail"]


def photo_taken(color, when: str | None = "2026:11:30 18:05:09", offset: str | None = "+01:00",
                gps: bool = True) -> bytes:
    """A phone's JPEG: when it was taken (with its zone) and where (52.52 N, 13.405 E)."""
    exif = Image.Exif()
    if when:
        exif.get_ifd(0x8769).update({0x9003: when, **({0x9011: offset} if offset else {})})
    if gps:
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 18.0)})
    return encode(Image.new("RGB", (64, 48), color), "JPEG", exif=exif.tobytes())


async def test_a_report_takes_when_and_where_from_the_photo(gateway):
    r = await add(gateway, photo_taken(RED), name="both", status="found", seen_at="photo", location="photo")
    assert r.status_code == 201, r.text
    assert {k: r.json()["payload"][k] for k in ("status", "seen_at", "location")} == {
        "status": "found", "seen_at": "2026-11-30T17:05:09+00:00", "location": {"lat": 52.52, "lon": 13.405}}
    # in `payload` too; the photo's time not asked for, not taken
    r = await gateway.post("/v1/dogs", files={"image": ("d.jpg", photo_taken(GREEN))},
                           data={"name": "place", "payload": '{"status": "found", "location": "photo"}'})
    assert r.status_code == 201 and r.json()["payload"]["location"] == {"lat": 52.52, "lon": 13.405}, r.text
    assert "seen_at" not in r.json()["payload"]
    # searched by place and time like any report: Berlin is 27 km from Potsdam, 255 from Hamburg
    assert names(await search(gateway, solid(RED), near=POTSDAM, radius_km="30")) == ["both", "place"]
    assert names(await search(gateway, solid(RED), near=POTSDAM, radius_km="30", seen_after="2026-11-30")) == ["both"]
    assert names(await search(gateway, solid(RED), near=HAMBURG, radius_km="30")) == []


async def test_a_camera_time_without_its_zone_is_taken_in_the_zone_given(gateway):
    """A camera that writes its clock's time and no zone: the finder says where the clock was."""
    r = await add(gateway, photo_taken(RED, offset=None), name="cam", seen_at="photo", time_zone="Europe/Berlin")
    assert r.status_code == 201, r.text
    assert r.json()["payload"]["seen_at"] == "2026-11-30T17:05:09+00:00" and "time_zone" not in r.json()["payload"]
    # the photo's own zone wins over the one given
    r = await add(gateway, photo_taken(GREEN), name="phone", seen_at="photo", time_zone="Asia/Tokyo")
    assert r.status_code == 201 and r.json()["payload"]["seen_at"] == "2026-11-30T17:05:09+00:00", r.text


@pytest.mark.parametrize(("photo", "fields", "words"), [
    (photo_taken(RED, gps=False), {"location": "photo"}, "location=photo: the photo does not say where it was taken"),
    (photo_taken(RED, offset=None), {"seen_at": "photo"},
     "seen_at=photo: the photo says it was taken at 2026-11-30 18:05:09 but not in which time zone"),
    (photo_taken(RED, offset=None), {"seen_at": "photo", "time_zone": "Europe/Atlantis"},
     "field 'time_zone': an IANA time zone such as 'Europe/Berlin', not 'Europe/Atlantis'"),
    (solid(RED), {"seen_at": "photo"}, "seen_at=photo: the photo does not say when it was taken"),
])
async def test_a_report_from_a_photo_that_does_not_say_is_422_and_nothing_is_stored(gateway, photo, fields, words):
    r = await add(gateway, photo, **fields)
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert (await gateway.get("/v1/dogs")).json()["total"] == 0


async def test_patch_has_no_photo_to_read(gateway):
    dog = await reported(gateway, RED)
    r = await gateway.patch(f"/v1/dogs/{dog}", json={"seen_at": "photo"})
    assert r.status_code == 422 and "is for adding a photo" in r.json()["detail"], r.text


async def test_when_and_where_a_photo_was_taken_is_offered_before_it_is_added(gateway):
    r = await gateway.post("/v1/taken", files={"image": ("IMG_0001.JPG", photo_taken(RED))})
    assert r.status_code == 200, r.text
    assert r.json() == {"seen_at": "2026-11-30T17:05:09+00:00", "location": {"lat": 52.52, "lon": 13.405},
                        "unknown": {}, "local_time": None}
    r = await gateway.post("/v1/taken", files={"image": ("d.jpg", photo_taken(RED, offset=None, gps=False))})
    assert r.json() == {"seen_at": None, "location": None, "local_time": "2026-11-30T18:05:09", "unknown": {
        "seen_at": "the photo says it was taken at 2026-11-30 18:05:09 but not in which time zone (give time_zone)",
        "location": "the photo does not say where it was taken (no GPS position)"}}
    assert (await gateway.get("/v1/dogs")).json()["total"] == 0  # nothing stored
    r = await gateway.post("/v1/taken", files={"image": ("x.txt", b"not a photo at all")})
    assert r.status_code == 415, r.text


async def test_a_search_near_where_its_photo_was_taken(gateway, reports):
    """I found this dog: lost dogs near where I took its photo (Berlin; the lost dog was seen there, the found one
    in Potsdam, 27 km away)."""
    r = await search(gateway, photo_taken(RED), near="photo", radius_km="10")
    assert names(r) == ["lost", "home"], r.text
    assert all(hit["distance_km"] < 0.01 for hit in r.json()["results"])
    r = await search(gateway, photo_taken(RED), near="photo", radius_km="30", for_status="found")
    assert names(r) == ["lost"]
    r = await search(gateway, photo_taken(RED, gps=False), near="photo")
    assert r.status_code == 422 and "near=photo: the photo does not say where it was taken" in r.json()["detail"]
