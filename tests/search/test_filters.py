"""parse_filter: the JSON form read once into the engine-neutral Filter that each engine translates (what the
engines then match is in test_contract.py)."""
from __future__ import annotations

import uuid

import pytest

from dogsearch.search.contract import InvalidStoreInput
from dogsearch.search.filters import (
    Filter,
    GeoRadius,
    HasId,
    IsEmpty,
    Match,
    TimeRange,
    excluding,
    needs_acorn,
    parse_filter,
)


def test_the_json_form_becomes_conditions() -> None:
    assert parse_filter({"breed": "pug"}) == Filter(must=(Match("breed", strings=("pug",)),))
    assert parse_filter({"age": [3, 5, 3], "good": [True, 1, False]}) == Filter(must=(
        Match("age", ints=(3, 5)),
        Match("good", ints=(1,), bools=(True, False)),  # a bool is kept apart from the int 1
    ))
    assert parse_filter({"breed": []}) == Filter(must=(Match("breed"),))  # matches nothing
    assert parse_filter({"color": "black", "$empty": ["name", "name"], "$not": {"breed": ["pug"], "$empty": ["x"]}}) \
        == Filter(must=(Match("color", strings=("black",)), IsEmpty("name")),
                  must_not=(Match("breed", strings=("pug",)), IsEmpty("x")))


def test_no_conditions_is_no_filter() -> None:
    for nothing in (None, {}, {"$not": {}}, {"$empty": []}, Filter()):
        assert parse_filter(nothing) is None
    parsed = parse_filter({"breed": "pug"})
    assert parse_filter(parsed) is parsed  # a Filter is taken as it is


def test_excluding_adds_the_ids_to_must_not() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    assert excluding(None, []) is None
    assert excluding(None, [str(a).upper(), str(b), str(a)]) == Filter(must_not=(HasId((str(a), str(b))),))
    base = parse_filter({"breed": "pug", "$not": {"age": 3}})
    assert excluding(base, [str(a)]) == Filter(must=base.must, must_not=base.must_not + (HasId((str(a),)),))
    with pytest.raises(InvalidStoreInput, match="UUID"):
        excluding(None, ["rex"])
    with pytest.raises(InvalidStoreInput, match="a list of point ids"):
        excluding(None, str(a))


def test_places_and_times_become_conditions_in_one_form() -> None:
    assert parse_filter({"location": {"$near": {"lat": 52, "lon": 13.4, "radius_km": 5}}}) == Filter(
        must=(GeoRadius("location", 52.0, 13.4, 5.0),))
    # bounds in any zone (or none: UTC) become RFC 3339 in UTC, what the gallery stores
    assert parse_filter({"seen_at": {"$gte": "2026-11-30T19:05:00+02:00", "$lte": "2026-12-01"}}) == Filter(
        must=(TimeRange("seen_at", "2026-11-30T17:05:00+00:00", "2026-12-01T00:00:00+00:00"),))
    assert parse_filter({"$not": {"seen_at": {"$lte": "2026-12-01T00:00:00Z"}}}) == Filter(
        must_not=(TimeRange("seen_at", None, "2026-12-01T00:00:00+00:00"),))


def test_acorn_is_asked_for_places_and_time_ranges_only() -> None:
    near = {"location": {"$near": {"lat": 50.0, "lon": 8.0, "radius_km": 40}}}
    assert needs_acorn(parse_filter(near)) and needs_acorn(parse_filter({"status": "lost", **near}))
    assert needs_acorn(parse_filter({"seen_at": {"$gte": "2026-01-01T00:00:00Z"}}))
    assert not needs_acorn(parse_filter({"breed": "beagle", "status": ["lost", "found"]}))
    assert not needs_acorn(parse_filter({"$not": {"seen_at": {"$gte": "2026-01-01T00:00:00Z"}}}))
    assert not needs_acorn(None)
