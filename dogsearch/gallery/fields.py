"""The user's own fields on a dog: validated, and kept apart from the fields the server records."""
from __future__ import annotations

import json
import re
from typing import Any

from dogsearch.core.errors import InvalidInput
from dogsearch.search.contract import IndexKind

# Payload fields searches filter on most, indexed in the collection; other fields still filter, just by scanning.
INDEXED_FIELDS: dict[str, IndexKind] = {"breed": "keyword", "name": "keyword"}
# Written by the server; a client may read them but never set them.
SERVER_FIELDS = frozenset({"sha256", "width", "height", "format", "bytes", "created_at", "model"})
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_MAX_JSON = 16 * 1024
Scalar = str | int | float | bool


class InvalidFields(InvalidInput):
    """A field name or value a dog cannot have, or JSON that is not an object of them."""


def parse_json_object(raw: str | None, field: str) -> dict[str, Any]:
    if raw is None or raw.strip() == "":
        return {}
    if len(raw) > _MAX_JSON:
        raise InvalidFields(f"{field}: larger than {_MAX_JSON} bytes")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidFields(f"{field}: not valid JSON ({exc.msg})") from exc
    if not isinstance(value, dict):
        raise InvalidFields(f"{field}: must be a JSON object")
    return value


def user_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Checks keys and values: scalars or lists of scalars, no server field names."""
    for key, value in fields.items():
        if not _KEY.match(key):
            raise InvalidFields(f"field name {key!r}: use letters, digits, '_', '.', '-' (max 64)")
        if key in SERVER_FIELDS:
            raise InvalidFields(f"field {key!r} is set by the server")
        if isinstance(value, list):
            if not all(isinstance(v, Scalar) for v in value):
                raise InvalidFields(f"field {key!r}: a list may hold only strings, numbers or booleans")
        elif not isinstance(value, Scalar):
            raise InvalidFields(f"field {key!r}: must be a string, number, boolean or a list of them")
    return fields


def search_filter(breed: str | None, name: str | None, raw_filter: str | None) -> dict[str, Any] | None:
    flt = user_fields(parse_json_object(raw_filter, "filter")) if raw_filter else {}
    for key, value in (("breed", breed), ("name", name)):
        if value:
            flt[key] = value
    return flt or None
