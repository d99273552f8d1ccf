"""Every field of a stored entry, defined once: who writes it (the user, the server or a bulk job), whether the
collection indexes it (and how), how a user's value is checked, and whether the public API shows it.

An entry is one dog in one photo, with the photo's vector (a search service point). A dog has one or more entries
(photos), one of them its cover (what lists show); a photo has one or more entries (dogs). The dog's own fields
(name, breed, the report of where and when it was seen, its owner) are on every entry of the dog, so filters apply
to any of them. Adding a field is one entry in FIELDS."""
from __future__ import annotations

import json
import math
import re
import unicodedata
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

from dogsearch.core.errors import InvalidInput, TooLarge
from dogsearch.core.jsontext import UnreadableJson, json_text
from dogsearch.search.contract import IndexKind
from dogsearch.search.filters import utc_instant

Writer = Literal["user", "server"]
Scalar = str | int | float | bool
STATUSES = ("lost", "found", "sighted", "home", "shelter")
# A report's `seen_at` or `location` given as this word, where a photo is added: when or where the photo was taken
# (its EXIF), filled in where the photo is read (gallery/reports.py, from_photo).
FROM_PHOTO = "photo"
PHOTO_FIELDS = ("seen_at", "location")
# With seen_at=photo, the time zone (IANA, "Europe/Berlin") the photo's camera time is in when the photo does not
# say (most cameras and many phones write no offset): used once, never stored.
TIME_ZONE = "time_zone"


class InvalidFields(InvalidInput):
    """A field name or value a dog cannot have, or JSON that is not an object of them."""


class FieldsOverLimit(TooLarge, InvalidFields):
    """More fields, or longer ones, than a dog may have."""


# A dog's own fields are copied into each of its entries (every point of the index, every Celery message of a bulk
# job): bounded where they come in, so a form of 20 MB of fields is not stored a hundred times. The same bounds as
# a bulk job's by default (JobsSettings: its manifest's columns and cells, a dog's fields as JSON).
MAX_USER_FIELDS = 64  # fields a user gives one dog
MAX_VALUE_BYTES = 4096  # one string value (a name, a description), UTF-8
MAX_LIST_ITEMS = 64  # values of one list field
MAX_FIELDS_BYTES = 16 * 1024  # all of a dog's user fields, as JSON
MAX_JSON_DEPTH = 8  # nesting of a JSON object given as text (a payload, a filter)
MAX_LABEL_CHARS = 200  # a name or a breed: shown in every list and result (the add form's own bound)


def shown_value(value: Any) -> str:
    """A value sent, as a refusal names it: at most about 64 characters of it (a 16 KB field is not sent back)."""
    text = repr(value)
    return text if len(text) <= 64 else f"{text[:60]}... ({len(text)} characters)"


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidFields(f"field 'status': one of {', '.join(STATUSES)}, not {shown_value(value)}")
    return value


def _label(name: str) -> Callable[[Any], str]:
    """The check of a name or a breed, wherever it comes from (the add form, its payload, a PATCH, a bulk job): a
    text of at most MAX_LABEL_CHARS characters without control characters (a NUL, a line break, an escape)."""
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise InvalidFields(f"field {name!r}: a text, not {shown_value(value)}")
        if len(value) > MAX_LABEL_CHARS:
            raise InvalidFields(f"field {name!r}: at most {MAX_LABEL_CHARS} characters, not {len(value)}")
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            raise InvalidFields(f"field {name!r}: {shown_value(value)} holds a control character (a NUL, a line "
                                "break, an escape)")
        return value
    return check


def parse_location(value: Any, name: str = "location") -> dict[str, float]:
    """"lat,lon" (a form field) or {"lat": .., "lon": ..} -> {"lat", "lon"} in degrees (Qdrant's geo point)."""
    try:
        if isinstance(value, str):
            lat, lon = (float(part) for part in value.split(","))
        elif isinstance(value, dict) and set(value) == {"lat", "lon"} and not any(
                isinstance(v, bool) for v in value.values()):
            lat, lon = float(value["lat"]), float(value["lon"])
        else:
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidFields(f'field \'{name}\': "lat,lon" or {{"lat": .., "lon": ..}} in degrees') from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise InvalidFields(f"field '{name}': latitude -90..90 and longitude -180..180, not {lat}, {lon}")
    return {"lat": lat, "lon": lon}


# How far ahead of this server's clock a report's time may be: a day covers every time zone a time without its
# zone may have been meant in, and a sender's clock a little fast; past it, a typo (2062 for 2026).
FUTURE_SLACK = timedelta(days=1)


def seen_at(value: Any) -> str:
    """ISO 8601 -> RFC 3339 in UTC (a time without a zone is taken as UTC); not in the future."""
    try:
        at = utc_instant(value)
    except (TypeError, ValueError):
        raise InvalidFields(f"field 'seen_at': a date and time in ISO 8601, not {shown_value(value)}") from None
    if at > datetime.now(UTC) + FUTURE_SLACK:
        raise InvalidFields(f"field 'seen_at': {at.isoformat()} is in the future: when was the dog seen?")
    return at.isoformat()


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())  # read once: the names of the tz database's files


def time_zone(value: Any) -> zoneinfo.ZoneInfo:
    """An IANA time zone name -> its zone; InvalidFields for anything else (only the database's own names are
    opened)."""
    if not isinstance(value, str) or value not in _zones():
        shown = value[:64] if isinstance(value, str) else value
        raise InvalidFields(f"field {TIME_ZONE!r}: an IANA time zone such as 'Europe/Berlin', not {shown!r}"
                            + ("" if _zones() else " (this server has no time zone database: install tzdata)"))
    return zoneinfo.ZoneInfo(value)


@dataclass(frozen=True)
class Field:
    name: str
    writer: Writer
    index: IndexKind | None = None  # the collection's payload index on it, if any (filters on others scan)
    check: Callable[[Any], Any] | None = None  # a user's value -> the value stored, or InvalidFields
    public: bool = True  # shown in the API's `payload` (the entry's structure is not)


FIELDS: tuple[Field, ...] = (
    # the dog
    Field("name", "user", "keyword", _label("name")),
    Field("breed", "user", "keyword", _label("breed")),
    Field("dog_id", "server", "keyword", public=False),  # the dog this entry shows
    Field("cover", "server", "bool", public=False),  # the entry that stands for its dog in lists: one per dog
    Field("dog_created_at", "server", "datetime", public=False),  # on its cover: lists show the newest dogs first
    Field("owner", "server", "keyword", public=False),  # the name of the API key that added the dog
    Field("job", "server", "keyword"),  # the bulk job that stored the photo: `filter={"job": ID}` lists what it added
    # the report: is the dog lost, found, seen somewhere, and when
    Field("status", "user", "keyword", _status),
    Field("location", "user", "geo", parse_location),
    Field("seen_at", "user", "datetime", seen_at),
    # the photo, and where in it the dog is
    Field("photo_id", "server", "keyword", public=False),  # the photo, named by its bytes: a file of the PhotoStore
    Field("photo_dogs", "server", public=False),  # how many dogs the detector found in the photo
    Field("box", "server"),  # [x0, y0, x1, y1] of the dog in the photo's pixels; absent: the whole photo
    Field("breed_guess", "server"),  # [{"breed", "p"}]: the detector's crop's likeliest breeds (no breed given)
    Field("sha256", "server"),
    Field("format", "server"),
    Field("width", "server"),
    Field("height", "server"),
    Field("bytes", "server"),
    Field("created_at", "server", "datetime"),  # indexed: a watch's check leaves out what was stored after its batch
    Field("model", "server"),  # the embedding model of the entry's vector
    Field("phash", "server"),  # the photo's perceptual hash (hex)
    # the dog of a stored look-alike (the same photo resized or recompressed); indexed: a dog's copies are listed
    Field("near_duplicate_of", "server", "keyword"),
    # the breed and the name as they are matched (match_key): "Beagle" finds "beagle", "Shih Tzu" "Shih-Tzu"
    Field("breed_key", "server", "keyword", public=False),
    Field("name_key", "server", "keyword", public=False),
)
BY_NAME = {f.name: f for f in FIELDS}
SERVER_FIELDS = frozenset(f.name for f in FIELDS if f.writer == "server")
HIDDEN_FIELDS = frozenset(f.name for f in FIELDS if not f.public)
INDEXED_FIELDS: dict[str, IndexKind] = {f.name: f.index for f in FIELDS if f.index}

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_MAX_JSON = MAX_FIELDS_BYTES


def parse_json_object(raw: str | None, field: str) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    if len(raw) > _MAX_JSON:
        raise FieldsOverLimit(f"{field}: larger than {_MAX_JSON} bytes")
    try:
        value = json_text(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFields(f"{field}: not valid JSON ({exc.msg})") from exc
    except UnreadableJson as exc:
        raise InvalidFields(f"{field}: {exc}") from exc
    except RecursionError:  # "[[[[..." deeper than the parser goes: was a 500
        raise InvalidFields(f"{field}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise InvalidFields(f"{field}: must be a JSON object")
    if _depth(value) > MAX_JSON_DEPTH:
        raise InvalidFields(f"{field}: nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def check_fields_size(fields: dict[str, Any]) -> None:
    """A dog's user fields within bounds (POST /v1/dogs; bulk jobs have settings of their own, jobs/sources.py):
    how many, each string's and list's length, and all of them as JSON. FieldsOverLimit (413) with the reason."""
    if len(fields) > MAX_USER_FIELDS:
        raise FieldsOverLimit(f"fields: {len(fields)} fields, limit {MAX_USER_FIELDS}")
    for key, value in fields.items():
        values = value if isinstance(value, list) else [value]
        if len(values) > MAX_LIST_ITEMS:
            raise FieldsOverLimit(f"fields: field {str(key)[:64]!r} has {len(values)} values, limit {MAX_LIST_ITEMS}")
        # measured as it is sent: a lone surrogate ("\ud800" in JSON) has no UTF-8 (user_fields refuses it)
        if any(isinstance(v, str) and len(v.encode(errors="surrogatepass")) > MAX_VALUE_BYTES for v in values):
            raise FieldsOverLimit(f"fields: field {str(key)[:64]!r} longer than {MAX_VALUE_BYTES} bytes")
    size = len(json.dumps(fields, ensure_ascii=False, default=str).encode(errors="surrogatepass"))
    if size > MAX_FIELDS_BYTES:
        raise FieldsOverLimit(f"fields: {size} bytes of fields, limit {MAX_FIELDS_BYTES}")


def user_fields(fields: dict[str, Any], *, from_photo: bool = False, removing: bool = False) -> dict[str, Any]:
    """The fields a user gives a dog, checked: names, none the server writes, each defined field's own check (a
    name, a status, a location, a time), any other a scalar or a list of scalars. Returns them as stored, but for
    `seen_at` and `location` given as FROM_PHOTO where a photo is added (`from_photo`): those stay the word, for
    reports.from_photo to fill in from the photo, and TIME_ZONE beside seen_at=photo, which from_photo uses up.
    `removing` (a PATCH): null removes a field, stored as null, which no filter matches and `public` leaves out.
    A free text's line breaks are stored as LF (_lines), whether it came in a form, as JSON or from a bulk job."""
    out = {}
    for key, value in fields.items():
        if not _KEY.match(key):
            raise InvalidFields(f"field name {shown_value(key)}: use letters, digits, '_', '.', '-' (max 64)")
        field = BY_NAME.get(key)
        if field is not None and field.writer != "user":
            raise InvalidFields(f"field {shown_value(key)} is set by the {field.writer}")
        if value is None and removing:
            out[key] = None
            continue
        if key == TIME_ZONE:
            if not from_photo or fields.get("seen_at") != FROM_PHOTO:
                raise InvalidFields(f"field {TIME_ZONE!r}: the zone of a photo's camera time, only beside "
                                    f"seen_at={FROM_PHOTO}")
            time_zone(value)
            out[key] = value
            continue
        if key in PHOTO_FIELDS and value == FROM_PHOTO:
            if not from_photo:
                raise InvalidFields(f"field {key!r}: {FROM_PHOTO!r} (the photo's own) is for adding a photo; give "
                                    f"the {'time' if key == 'seen_at' else 'place'} itself here")
            out[key] = value
            continue
        if field is not None and field.check is not None:
            out[key] = field.check(value)
            continue
        _finite(value, f"field {shown_value(key)}")
        if any(isinstance(v, str) and any(unicodedata.category(c) == "Cs" for c in v)
               for v in (value if isinstance(value, list) else [value])):  # "\ud800" in JSON: no text, no UTF-8
            raise InvalidFields(f"field {shown_value(key)}: holds a lone surrogate, which is not text")
        if isinstance(value, list):
            if not all(isinstance(v, Scalar) for v in value):
                raise InvalidFields(f"field {shown_value(key)}: a list may hold only strings, numbers or booleans")
        elif not isinstance(value, Scalar):
            raise InvalidFields(f"field {shown_value(key)}: must be a string, number, boolean or a list of them")
        out[key] = _lines(value)
    return out


def same_value(stored: Any, sent: Any) -> bool:
    """Whether a dog's stored value is the one `sent` (checked: user_fields): a free text stored before its line
    breaks were stored as LF is the same text sent again."""
    return _lines(stored) == sent


def _lines(value: Any) -> Any:
    """A free text (notes), or a list's, with its line breaks as LF alone: a browser's form sends a textarea's as CRLF
    (and a file from an old Mac has CR), which would store the same notes in another form, seen as changed by every
    edit."""
    if isinstance(value, list):
        return [_lines(v) for v in value]
    return value.replace("\r\n", "\n").replace("\r", "\n") if isinstance(value, str) else value


def _finite(value: Any, what: str) -> None:
    """JSON as Python reads it takes NaN, Infinity and 1e999 (infinity): no store can keep or compare them."""
    for v in value if isinstance(value, list) else [value]:
        if isinstance(v, float) and not math.isfinite(v):
            raise InvalidFields(f"{what}: a number must be finite, not {v}")


# The fields matched by their key (match_key), and the field that holds it.
MATCHED = {"breed": "breed_key", "name": "name_key"}


def match_key(value: str) -> str:
    """How a breed or a name is matched: its letters and digits alone, without case or accents ("Shih-Tzu",
    "shih tzu", "SHIH–TZU" and "ShihTzu" are one breed, as "Bull Mastiff" and "Bullmastiff"; "Zoë" is "zoe")."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", value.casefold()) if not unicodedata.combining(c))
    return "".join(re.split(r"[\W_]+", plain))


def match_keys(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of `fields`' breed and name, to store beside them: of a string, a number (its text) or a list of
    them; None for anything else given (a PATCH to null), so no key of an earlier value is left behind."""
    def key_of(value: Any) -> str | None:
        return match_key(value if isinstance(value, str) else str(value)) \
            if isinstance(value, str | int) and not isinstance(value, bool) else None

    out: dict[str, Any] = {}
    for field, key in MATCHED.items():
        if field in fields:
            value = fields[field]
            out[key] = [key_of(v) for v in value] if isinstance(value, list) else key_of(value)
    return out


def search_filter(breed: str | None, name: str | None, raw_filter: str | None) -> dict[str, Any] | None:
    """A public filter (field -> value, or a list of values for any of them) and the breed and name shortcuts. Its
    values are matched as given (scalars only), but a breed's and a name's by their keys (match_key)."""
    flt = parse_json_object(raw_filter, "filter") if raw_filter else {}
    for key, value in flt.items():
        if not _KEY.match(key) or key in HIDDEN_FIELDS:
            raise InvalidFields(f"filter field {shown_value(key)}: not a field of a dog's payload")
        if not isinstance(value, Scalar) and not (isinstance(value, list) and all(isinstance(v, Scalar)
                                                                               for v in value)):
            raise InvalidFields(f"filter on {shown_value(key)}: a string, number, boolean or a list of them")
        _finite(value, f"filter on {shown_value(key)}")
    for key, value in (("breed", breed), ("name", name)):
        if value:
            flt[key] = value
    for field, key in MATCHED.items():
        if field not in flt:
            continue
        keys = match_keys({field: flt[field]})[key]
        # a flag, or a value without letters or digits ("---"), stays a match on the field as given
        if keys not in (None, "") and not (isinstance(keys, list) and (None in keys or "" in keys)):
            del flt[field]
            flt[key] = keys
    return flt or None


def own_fields(payload: dict[str, Any]) -> dict[str, Any]:
    """A stored entry's fields that belong to its dog, not to its photo (the user's: name, breed, a report, their
    own), for another photo of the same dog."""
    return {k: v for k, v in payload.items() if k not in SERVER_FIELDS and v is not None}


def public(payload: dict[str, Any]) -> dict[str, Any]:
    """An entry's payload as the API shows it: without the entry's structure (which dog, which photo, where)."""
    return {k: v for k, v in payload.items() if k not in HIDDEN_FIELDS and v is not None}  # null: removed
