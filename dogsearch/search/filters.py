"""Filters, read and checked once, whichever engine runs them: parse_filter() turns the JSON form callers send into
a Filter, and each engine translates a Filter into its own filter model (one small function per engine).

The JSON form is an object of field -> value:

- ``{"breed": "pug"}``: payload["breed"] equals "pug". A value is a string, an int (64-bit) or a bool; as in
  Qdrant, a bool only matches a bool (never 1/0), an int only an int, and a list-valued payload field matches when
  any of its elements does.
- ``{"breed": ["pug", "beagle"]}``: any of the values; ``[]`` matches nothing.
- several fields: all of them (AND).
- ``"$not": {...}``: an object of the same form (fields, and ``$empty``); a point matching any of its conditions is
  left out: ``{"$not": {"breed": "pug", "color": "black"}}`` leaves out pugs and black dogs alike.
- ``"$empty": ["field", ...]``: each field is missing, null or an empty list (``{"$not": {"$empty": ["name"]}}``:
  has a name).
- ``{"location": {"$near": {"lat": 52.52, "lon": 13.4, "radius_km": 5}}}``: the field is a geo point
  (``{"lat", "lon"}`` in degrees) within that many km of the centre, on the sphere (Qdrant's geo radius).
- ``{"seen_at": {"$gte": "2026-11-01T00:00:00Z", "$lte": "2026-11-30"}}``: the field is a date and time (RFC 3339)
  in that range, ends included; either bound may be left out. Bounds are ISO 8601 (a time without a zone is UTC).
  Both are conditions like any other: inside ``$not`` they leave out what they match.

Field names are non-empty strings that do not start with "$": the operators are the only keys that do, so they
cannot clash with a field (the gallery's field names start with a letter).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dogsearch.search.base import point_id
from dogsearch.search.contract import InvalidStoreInput

NOT, EMPTY, NEAR, GTE, LTE = "$not", "$empty", "$near", "$gte", "$lte"
MAX_RADIUS_KM = 20_100.0  # past half the Earth's circumference (20,015 km) a circle holds every point
_INT64 = range(-(2**63), 2**63)


@dataclass(frozen=True)
class Match:
    """The field equals one of the values (any element of a list field does); no values at all: matches nothing."""

    field: str
    strings: tuple[str, ...] = ()
    ints: tuple[int, ...] = ()
    bools: tuple[bool, ...] = ()


@dataclass(frozen=True)
class IsEmpty:
    """The field is missing, null or an empty list."""

    field: str


@dataclass(frozen=True)
class HasId:
    """The point's id is one of these (canonical UUID strings)."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class GeoRadius:
    """The field is a geo point ({"lat", "lon"}) within ``radius_km`` of (lat, lon)."""

    field: str
    lat: float
    lon: float
    radius_km: float


@dataclass(frozen=True)
class TimeRange:
    """The field is a date and time within [gte, lte] (RFC 3339 in UTC; None: unbounded on that side)."""

    field: str
    gte: str | None = None
    lte: str | None = None


Condition = Match | IsEmpty | HasId | GeoRadius | TimeRange


@dataclass(frozen=True)
class Filter:
    """Points matching every condition of ``must`` and none of ``must_not``."""

    must: tuple[Condition, ...] = ()
    must_not: tuple[Condition, ...] = ()


# What the stores accept for a filter: a Filter (already checked), the JSON form (checked here), or None for all.
FilterSpec = Filter | Mapping[str, Any] | None


def parse_filter(spec: FilterSpec) -> Filter | None:
    """The Filter for ``spec``; None when it has no conditions. InvalidStoreInput says what is wrong with it."""
    if spec is None or isinstance(spec, Filter):
        return spec if spec is None or spec.must or spec.must_not else None
    if not isinstance(spec, Mapping):
        raise InvalidStoreInput(f"a filter is an object of field -> value(s), got {_show(spec)}")
    must, must_not = _conditions(spec, "filter", allow_not=True), []
    if NOT in spec:
        inner = spec[NOT]
        if not isinstance(inner, Mapping):
            raise InvalidStoreInput(f"filter {NOT}: an object of field -> value(s), got {_show(inner)}")
        must_not = _conditions(inner, f"filter {NOT}", allow_not=False)
    return Filter(tuple(must), tuple(must_not)) if must or must_not else None


def excluding(filter: Filter | None, ids: Sequence[str]) -> Filter | None:
    """``filter`` and also none of ``ids`` (checked as point ids)."""
    if isinstance(ids, str):
        raise InvalidStoreInput(f"exclude: a list of point ids, got {_show(ids)}")
    if not ids:
        return filter
    filter = filter or Filter()
    return Filter(filter.must, filter.must_not + (HasId(tuple(dict.fromkeys(point_id(i) for i in ids))),))


def _conditions(spec: Mapping[Any, Any], where: str, *, allow_not: bool) -> list[Condition]:
    """The conditions of one object's fields and $empty ($not is read by the caller)."""
    must: list[Condition] = []
    for field, value in spec.items():
        if field == NOT:
            if not allow_not:
                raise InvalidStoreInput(f"{where}: {NOT} cannot be nested")
            continue
        if field == EMPTY:
            if not isinstance(value, (list, tuple)):
                raise InvalidStoreInput(f"{where} {EMPTY}: a list of field names, got {_show(value)}")
            must += [IsEmpty(_field(name, f"{where} {EMPTY}")) for name in dict.fromkeys(value)]
            continue
        name = _field(field, where)
        must.append(_operator(name, value, where) if isinstance(value, Mapping) else _match(name, value, where))
    return must


def _field(field: Any, where: str) -> str:
    if not isinstance(field, str) or not field:
        raise InvalidStoreInput(f"{where}: a field name is a non-empty string, got {_show(field)}")
    if field.startswith("$"):
        raise InvalidStoreInput(f"{where}: unknown operator {field!r} (there are {NOT} and {EMPTY}, and {NEAR}, "
                                f"{GTE}, {LTE} as a field's value; field names cannot start with '$')")
    return field


def _match(field: str, value: Any, where: str) -> Match:
    values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    strings: dict[str, None] = {}
    ints: dict[int, None] = {}
    bools: dict[bool, None] = {}
    for v in values:
        if isinstance(v, bool):  # first: a bool is an int to Python, never to the engines
            bools[v] = None
        elif isinstance(v, str):
            strings[v] = None
        elif isinstance(v, int) and v in _INT64:
            ints[v] = None
        else:
            raise InvalidStoreInput(
                f"{where} on {field!r}: values must be str, int (64-bit) or bool, or a list of them; got {_show(v)}"
            )
    return Match(field, tuple(strings), tuple(ints), tuple(bools))


def _operator(field: str, spec: Mapping[Any, Any], where: str) -> GeoRadius | TimeRange:
    """A field's value that is an object: {"$near": {...}} or {"$gte": .., "$lte": ..}."""
    if set(spec) == {NEAR}:
        return _near(field, spec[NEAR], f"{where} on {field!r} {NEAR}")
    if spec and set(spec) <= {GTE, LTE}:
        bounds = {key: _datetime(spec[key], f"{where} on {field!r} {key}") for key in (GTE, LTE) if key in spec}
        if GTE in bounds and LTE in bounds and bounds[GTE] > bounds[LTE]:
            raise InvalidStoreInput(f"{where} on {field!r}: {GTE} {bounds[GTE]} is after {LTE} {bounds[LTE]}")
        return TimeRange(field, *(None if key not in bounds else bounds[key].isoformat() for key in (GTE, LTE)))
    raise InvalidStoreInput(f"{where} on {field!r}: an object value is {{{NEAR!r}: ...}} or a range of {GTE!r} "
                            f"and/or {LTE!r}, got {_show(spec)}")


def _near(field: str, spec: Any, where: str) -> GeoRadius:
    if not isinstance(spec, Mapping) or set(spec) != {"lat", "lon", "radius_km"}:
        raise InvalidStoreInput(f'{where}: {{"lat", "lon", "radius_km"}}, got {_show(spec)}')
    values = [spec[key] for key in ("lat", "lon", "radius_km")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise InvalidStoreInput(f"{where}: lat, lon and radius_km are finite numbers, got {_show(dict(spec))}")
    lat, lon, radius = map(float, values)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidStoreInput(f"{where}: latitude -90..90 and longitude -180..180, got {lat}, {lon}")
    if not 0 < radius <= MAX_RADIUS_KM:
        raise InvalidStoreInput(f"{where}: radius_km above 0 and at most {MAX_RADIUS_KM:g}, got {radius:g}")
    return GeoRadius(field, lat, lon, radius)


def utc_instant(value: Any) -> datetime:
    """ISO 8601 -> an aware datetime in UTC; a time without a zone is UTC (as the gallery stores `seen_at`).
    TypeError or ValueError for anything else: each caller says why in its own words."""
    when = datetime.fromisoformat(value)
    try:
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-12:00 is past the last instant there is: was a 500 on every route
        raise ValueError(f"{value!r} is out of the range of times") from None


def _datetime(value: Any, where: str) -> datetime:
    try:
        return utc_instant(value)
    except (TypeError, ValueError):
        raise InvalidStoreInput(f"{where}: a date and time in ISO 8601, got {_show(value)}") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def needs_acorn(filter: Filter | None) -> bool:
    """Whether a filtered search walks the graph with ACORN: when it must meet a place or a time range. A radius
    or range that keeps few points cuts the graph into pieces the plain walk misses (a 50 km radius holding 1.4 %
    of 300,000 points: recall@10 0.84 without, 0.999 with). A match on values (a breed, a status, ids) needs no
    ACORN: the engine links the points of each indexed value in the graph, so the plain walk stays connected (a
    breed of 3.3 % of them: recall 1.0 either way), and ACORN cost that search 20-25x (p95 49 against 2 ms;
    docs/scaling.md, both engines). Conditions a point must not meet exclude a few points and leave the graph whole."""
    return filter is not None and any(isinstance(c, GeoRadius | TimeRange) for c in filter.must)
