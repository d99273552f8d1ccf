"""Reports: where and when a dog was seen, which dogs a search keeps by place, time and status, and which reports
answer which (a found dog is looked for among lost ones, a lost dog among found and sighted ones).

A dog's report is three of its user fields (gallery/fields.py): `status`, `location` ({"lat", "lon"}) and `seen_at`
(RFC 3339 in UTC). A search turns the caller's `near`/`radius_km`, `seen_after`/`seen_before` and `status` (or
`for_status`, the status of the dog being looked for a match of) into the store's filter (search/filters.py:
`$near`, `$gte`/`$lte`), which both engines run as Qdrant payload filters on the collection's geo, datetime and
keyword indexes."""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from dogsearch.core.exif import Taken
from dogsearch.gallery.fields import (
    FROM_PHOTO,
    PHOTO_FIELDS,
    STATUSES,
    TIME_ZONE,
    InvalidFields,
    parse_location,
    seen_at,
    time_zone,
)
from dogsearch.search.filters import utc_instant

# Whose reports answer a report of each status. `home` ends a report: it answers none, and no search for a
# counterpart offers a dog whose status is `home` (it is in no list below). A shelter holds dogs that were found.
COUNTERPARTS: dict[str, tuple[str, ...]] = {
    "lost": ("found", "sighted", "shelter"),
    "found": ("lost",),
    "sighted": ("lost",),
    "shelter": ("lost",),
}
MAX_RADIUS_KM = 20_000.0  # about half the Earth's circumference: a larger circle holds every point anyway
EARTH_RADIUS_KM = 6371.0088  # the mean radius, as Qdrant's geo filters use it


class InvalidReportQuery(InvalidFields):
    """A place, radius, time or status a search cannot use."""


@dataclass(frozen=True)
class Place:
    lat: float
    lon: float


@dataclass(frozen=True)
class ReportQuery:
    """What a search asks of the dogs' reports. `near` alone only measures distances; with `radius_km` it keeps the
    dogs within so many km (a dog without a location is then left out)."""

    near: Place | None = None
    radius_km: float | None = None
    seen_after: str | None = None  # RFC 3339, UTC, inclusive
    seen_before: str | None = None
    statuses: tuple[str, ...] = ()  # any of them; () = any status, or none

    def filter(self) -> dict[str, Any]:
        """The store's filter for it (search/filters.py's JSON form); {} when it keeps every dog."""
        flt: dict[str, Any] = {}
        if self.near is not None and self.radius_km is not None:
            flt["location"] = {"$near": {"lat": self.near.lat, "lon": self.near.lon, "radius_km": self.radius_km}}
        if self.seen_after or self.seen_before:
            flt["seen_at"] = {k: v for k, v in (("$gte", self.seen_after), ("$lte", self.seen_before)) if v}
        if self.statuses:
            flt["status"] = list(self.statuses)
        return flt

    def merged(self, flt: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """`flt` (the caller's other conditions) and this query's; a field given in both is refused."""
        own = self.filter()
        clash = sorted(set(own) & set(flt or {}))
        if clash:
            raise InvalidReportQuery(f"{', '.join(clash)}: given in filter and by its own search field; give one")
        return {**(flt or {}), **own} or None


def report_query(near: str | None = None, radius_km: float | None = None, seen_after: str | None = None,
                 seen_before: str | None = None, status: Iterable[str] = (), for_status: str | None = None,
                 centre: Place | None = None) -> ReportQuery:
    """The caller's fields, checked (InvalidReportQuery, a 422, with the reason). `status` is any of these (each
    item may be a comma-separated list); `for_status` asks for the counterparts of a report of that status instead.
    `centre`: the place `radius_km` is around when no `near` is given (more like this: the dog's own location)."""
    place = _place(near) if near else centre
    if radius_km is not None:
        if place is None:
            raise InvalidReportQuery("radius_km needs near=lat,lon: the place it is around")
        if not (math.isfinite(radius_km) and 0 < radius_km <= MAX_RADIUS_KM):
            raise InvalidReportQuery(f"radius_km: above 0 and at most {MAX_RADIUS_KM:g}, not {radius_km:g}")
    after = _instant(seen_after, "seen_after", end_of_day=False)
    before = _instant(seen_before, "seen_before", end_of_day=True)
    if after and before and after > before:
        raise InvalidReportQuery(f"seen_after {after.isoformat()} is later than seen_before {before.isoformat()}")
    statuses = _statuses(status)
    if for_status:
        if statuses:
            raise InvalidReportQuery("give status or for_status, not both")
        statuses = counterparts(for_status)
    return ReportQuery(place, radius_km, after and after.isoformat(), before and before.isoformat(), statuses)


@dataclass(frozen=True)
class PhotoReport:
    """When and where a photo says it was taken, as a report's fields (`seen_at` RFC 3339 in UTC, `location`
    {"lat", "lon"}), and for each it does not say, why."""

    seen_at: str | None
    location: dict[str, float] | None
    unknown: dict[str, str]
    local_time: datetime | None = None  # the camera's time when the photo does not say its zone (seen_at None)


def photo_report(taken: Taken) -> PhotoReport:
    """A photo's EXIF (core/exif.py) as a report. A camera's time without its zone is not taken as it is: read as
    UTC, as a time without a zone is elsewhere, it could be hours off. It is kept as `local_time`, for a zone the
    user gives (TIME_ZONE)."""
    unknown = {}
    if taken.at is None:
        unknown["seen_at"] = (f"the photo says it was taken at {taken.local:%Y-%m-%d %H:%M:%S} but not in which time "
                              f"zone (give {TIME_ZONE})" if taken.local else "the photo does not say when it was taken")
    if taken.where is None:
        unknown["location"] = "the photo does not say where it was taken (no GPS position)"
    return PhotoReport(seen_at=taken.at and taken.at.astimezone(UTC).isoformat(),
                       location=taken.where and {"lat": taken.where[0], "lon": taken.where[1]}, unknown=unknown,
                       local_time=taken.local)


def asks_photo(fields: Mapping[str, Any]) -> bool:
    """Whether a report field is given as the photo's own (FROM_PHOTO)."""
    return any(fields.get(key) == FROM_PHOTO for key in PHOTO_FIELDS)


def from_photo(fields: Mapping[str, Any], report: PhotoReport) -> dict[str, Any]:
    """`fields` with each report field given as FROM_PHOTO set to the photo's own; InvalidFields (a 422, nothing
    stored) when the photo does not say it: it was asked for, so it is not left out quietly. A camera's time without
    its zone is read in TIME_ZONE when given (the photo's own zone or GPS time comes first)."""
    out = dict(fields)
    zone = out.pop(TIME_ZONE, None)
    for key in PHOTO_FIELDS:
        if out.get(key) == FROM_PHOTO:
            value = getattr(report, key)
            if value is None and key == "seen_at" and zone and report.local_time:
                # the hour the clocks go back happens twice: its first time (fold 0)
                with contextlib.suppress(OverflowError):  # year 9999 west of UTC: no instant, so not said
                    value = report.local_time.replace(tzinfo=time_zone(zone)).astimezone(UTC).isoformat()
            if value is None:
                raise InvalidFields(f"{key}={FROM_PHOTO}: {report.unknown[key]}; give {key} yourself")
            out[key] = seen_at(value) if key == "seen_at" else value  # a camera's clock may be years ahead
    return out


def near_photo(report: PhotoReport) -> str:
    """A search's `near` given as FROM_PHOTO: where its photo was taken ("lat,lon"); InvalidReportQuery when the
    photo does not say."""
    if report.location is None:
        raise InvalidReportQuery(f"near={FROM_PHOTO}: {report.unknown['location']}; give near yourself")
    return f"{report.location['lat']},{report.location['lon']}"


def counterparts(status: str) -> tuple[str, ...]:
    """The statuses of the reports that answer a report of `status` (COUNTERPARTS)."""
    if status not in STATUSES:
        raise InvalidReportQuery(f"for_status: one of {', '.join(COUNTERPARTS)}, not {status!r}")
    if status not in COUNTERPARTS:
        raise InvalidReportQuery(f"for_status {status!r}: the dog is home, its report is closed; nothing answers it")
    return COUNTERPARTS[status]


def distance_km(a: Place | Mapping[str, float], b: Place | Mapping[str, float]) -> float:
    """Great-circle distance (haversine, on the sphere of Qdrant's geo filters)."""
    (lat1, lon1), (lat2, lon2) = (_lat_lon(p) for p in (a, b))
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlam = phi2 - phi1, math.radians(lon2 - lon1)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def stored_place(payload: Mapping[str, Any]) -> Place | None:
    """Where a stored dog was seen, or None (no location, or not one: a payload written by hand)."""
    where = payload.get("location")
    if not isinstance(where, Mapping):
        return None
    lat, lon = where.get("lat"), where.get("lon")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lat, lon)):
        return None
    return Place(float(lat), float(lon))


def distance_from(place: Place | None, payload: Mapping[str, Any]) -> float | None:
    """How far a stored dog was seen from `place`, in km (to the metre), or None when either is unknown."""
    seen = stored_place(payload)
    return None if place is None or seen is None else round(distance_km(place, seen), 3)


def _lat_lon(p: Place | Mapping[str, float]) -> tuple[float, float]:
    return (p.lat, p.lon) if isinstance(p, Place) else (float(p["lat"]), float(p["lon"]))


def _place(text: str) -> Place:
    try:
        where = parse_location(text, "near")
    except InvalidFields as exc:
        raise InvalidReportQuery(str(exc)) from None
    return Place(where["lat"], where["lon"])


def _instant(text: str | None, name: str, *, end_of_day: bool) -> datetime | None:
    """ISO 8601 -> aware UTC. A bare date is its whole day in UTC: from its first instant (seen_after) or to its last
    (seen_before), so that seen_before=2026-11-30 keeps the dogs seen on the 30th."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day, time(), UTC)
            return start + timedelta(days=1, microseconds=-1) if end_of_day else start
        return utc_instant(text)
    except ValueError:
        raise InvalidReportQuery(f"{name}: a date or a date and time in ISO 8601, not {text[:64]!r}") from None


def _statuses(items: Iterable[str]) -> tuple[str, ...]:
    wanted = [s.strip() for item in items for s in item.split(",") if s.strip()]
    for s in wanted:
        if s not in STATUSES:
            raise InvalidReportQuery(f"status: one of {', '.join(STATUSES)}, not {s[:64]!r}")
    return tuple(dict.fromkeys(wanted))
