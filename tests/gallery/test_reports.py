"""gallery/reports.py: a search's report fields -> the store's filter, the lost <-> found rule, distances, and a
report's time and place from its photo."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dogsearch.core.exif import Taken
from dogsearch.gallery.fields import STATUSES, InvalidFields, user_fields
from dogsearch.gallery.reports import (
    COUNTERPARTS,
    InvalidReportQuery,
    Place,
    asks_photo,
    counterparts,
    distance_from,
    distance_km,
    from_photo,
    photo_report,
    report_query,
)


def test_a_query_becomes_the_stores_filter():
    q = report_query("52.52, 13.405", 25, "2026-11-01", "2026-11-30", ["lost, found", "lost"])
    assert q.filter() == {
        "location": {"$near": {"lat": 52.52, "lon": 13.405, "radius_km": 25}},
        "seen_at": {"$gte": "2026-11-01T00:00:00+00:00", "$lte": "2026-11-30T23:59:59.999999+00:00"},
        "status": ["lost", "found"],
    }
    assert report_query("52.52,13.405").filter() == {}  # near alone only measures distances
    assert report_query().merged(None) is None
    assert report_query(status=["lost"]).merged({"breed": "pug"}) == {"breed": "pug", "status": ["lost"]}
    with pytest.raises(InvalidReportQuery, match="given in filter"):
        report_query(status=["lost"]).merged({"status": "found"})


def test_lost_and_found_answer_each_other_and_home_ends_a_report():
    assert counterparts("found") == ("lost",) and counterparts("sighted") == ("lost",)
    assert set(counterparts("lost")) == {"found", "sighted", "shelter"}
    assert all("home" not in answer for answer in COUNTERPARTS.values())
    assert set(COUNTERPARTS) == set(STATUSES) - {"home"}
    with pytest.raises(InvalidReportQuery, match="closed"):
        counterparts("home")
    assert report_query(for_status="found").statuses == ("lost",)


def test_radius_around_a_dogs_own_place():
    q = report_query(radius_km=5, centre=Place(1.0, 2.0))
    assert q.near == Place(1.0, 2.0) and q.filter()["location"]["$near"]["radius_km"] == 5
    with pytest.raises(InvalidReportQuery, match="needs near"):
        report_query(radius_km=5)


def test_distances_on_the_sphere():
    assert distance_km(Place(52.52, 13.405), {"lat": 48.8566, "lon": 2.3522}) == pytest.approx(878, abs=2)
    assert distance_km(Place(0, 179.9), Place(0, -179.9)) == pytest.approx(22.2, abs=0.1)  # across the antimeridian
    assert distance_km(Place(90, 0), Place(-90, 0)) == pytest.approx(20015, abs=1)
    assert distance_from(Place(0, 0), {"location": {"lat": 0, "lon": 0}}) == 0
    assert distance_from(None, {"location": {"lat": 0, "lon": 0}}) is None
    assert distance_from(Place(0, 0), {}) is None
    for odd in ({"lat": 1}, {"lat": "1", "lon": 2}, {"lat": True, "lon": 2}, [1, 2], "1,2"):  # not a stored place
        assert distance_from(Place(0, 0), {"location": odd}) is None


def test_a_report_from_the_photo_is_filled_in_or_refused_with_the_reason():
    said = photo_report(Taken(at=datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC), where=(52.52, 13.405)))
    assert (said.seen_at, said.location, said.unknown) == ("2026-11-30T17:05:09+00:00", {"lat": 52.52, "lon": 13.405},
                                                           {})
    asked = user_fields({"name": "Rex", "seen_at": "photo", "location": "photo"}, from_photo=True)
    assert asks_photo(asked) and not asks_photo({"seen_at": "2026-11-30T17:05:09+00:00"})
    assert from_photo(asked, said) == {"name": "Rex", "seen_at": "2026-11-30T17:05:09+00:00",
                                       "location": {"lat": 52.52, "lon": 13.405}}

    zoneless = photo_report(Taken(local=datetime(2026, 11, 30, 18, 5, 9)))
    assert zoneless.seen_at is None and zoneless.location is None
    with pytest.raises(InvalidFields, match=r"seen_at=photo: the photo says it was taken at 2026-11-30 18:05:09 but "
                                            r"not in which time zone \(give time_zone\); give seen_at yourself"):
        from_photo({"seen_at": "photo"}, zoneless)
    with pytest.raises(InvalidFields, match="location=photo: the photo does not say where it was taken"):
        from_photo({"location": "photo", "seen_at": "2026-11-30"}, zoneless)
    assert from_photo({"seen_at": "2026-11-30T00:00:00+00:00"}, zoneless) == {"seen_at": "2026-11-30T00:00:00+00:00"}


def test_a_camera_time_without_its_zone_is_read_in_the_zone_the_user_gives():
    """Most cameras, and many phones, write the time on their clock and no offset: the user says where that clock
    was (winter in Berlin: UTC+1; summer in New York: UTC-4). The photo's own zone, or its GPS time, comes first."""
    berlin = user_fields({"seen_at": "photo", "time_zone": "Europe/Berlin"}, from_photo=True)
    assert from_photo(berlin, photo_report(Taken(local=datetime(2026, 11, 30, 18, 5, 9)))) == {
        "seen_at": "2026-11-30T17:05:09+00:00"}  # used up, not stored
    new_york = {"seen_at": "photo", "time_zone": "America/New_York"}
    assert from_photo(new_york, photo_report(Taken(local=datetime(2026, 7, 1, 12, 0))))["seen_at"] == \
        "2026-07-01T16:00:00+00:00"
    said = photo_report(Taken(at=datetime(2026, 11, 30, 17, 5, 9, tzinfo=UTC)))
    assert from_photo(new_york, said)["seen_at"] == "2026-11-30T17:05:09+00:00"
    with pytest.raises(InvalidFields, match="the photo does not say when it was taken"):
        from_photo(berlin, photo_report(Taken()))  # a zone gives no time to a photo without one


@pytest.mark.parametrize(("fields", "from_photo", "words"), [
    ({"seen_at": "photo", "time_zone": "Mars/Olympus_Mons"}, True, "an IANA time zone such as 'Europe/Berlin'"),
    ({"seen_at": "photo", "time_zone": "../../../etc/passwd"}, True, "an IANA time zone"),
    ({"seen_at": "photo", "time_zone": 1}, True, "an IANA time zone"),
    ({"time_zone": "Europe/Berlin"}, True, "only beside seen_at=photo"),
    ({"seen_at": "2026-11-30T17:05:09Z", "time_zone": "Europe/Berlin"}, True, "only beside seen_at=photo"),
    ({"time_zone": "Europe/Berlin"}, False, "only beside seen_at=photo"),  # PATCH: no photo, and never stored
])
def test_a_time_zone_is_a_known_zone_beside_seen_at_photo(fields, from_photo, words):
    with pytest.raises(InvalidFields, match=words):
        user_fields(fields, from_photo=from_photo)


@pytest.mark.parametrize("key", ["seen_at", "location"])
def test_the_photos_own_is_for_adding_a_photo_only(key):
    """PATCH has no photo to read: "photo" there is refused as such, not stored as the word."""
    with pytest.raises(InvalidFields, match="is for adding a photo"):
        user_fields({key: "photo"})


def test_a_photos_time_in_the_future_is_refused_as_a_typed_one_is():
    """A camera whose clock says 2062: seen_at=photo is checked as a time typed in is."""
    with pytest.raises(InvalidFields, match="is in the future"):
        from_photo({"seen_at": "photo"}, photo_report(Taken(at=datetime(2062, 11, 30, 17, 5, 9, tzinfo=UTC))))
