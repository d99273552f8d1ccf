"""Reports over the public API: a dog's status, place and time (POST /v1/dogs, PATCH), searches by place, time and
status, lost <-> found, and the distance and time on each result."""
from __future__ import annotations

import pytest

from tests.gateway.helpers import BLUE, DARK_RED, GREEN, RED, add, search
from tests.images import solid

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
