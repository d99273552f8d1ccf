"""Pages of points in the order of a datetime field, for both engines.

The engines sort by a field (with a range index) from a start value on, but give no cursor: a page starts at the
value the previous one ended on, which the points sharing that value make ambiguous. So the token a page hands on
names that value and the ids already shown at it, and the next page leaves those out."""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dogsearch.search.base import point_id
from dogsearch.search.contract import InvalidStoreInput, Point
from dogsearch.search.filters import Filter, excluding

ORDER_BY = re.compile(r"-?[a-z_][a-z0-9_]{0,63}")  # a field's name; "-name": the newest first
MAX_TOKEN = 8192  # characters: a token names its value and the ids shown at it, a few unless many share it
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# the microseconds of the first and last instants a datetime holds: a token's value past them was a 500
_FIRST = -62135596800 * 10**6
_LAST = 253402300799 * 10**6 + 999_999

# (limit, field, newest first, start at (inclusive; None: the first), filter, with vectors) -> [(point, its value)]
Fetch = Callable[[int, str, bool, "str | None", "Filter | None", bool], list[tuple[Point, int]]]


@dataclass(frozen=True)
class Resume:
    """Where the next page starts: at `value` (the engines' microseconds since the epoch), without `ids`."""

    value: int
    ids: tuple[str, ...]

    def token(self) -> str:
        raw = json.dumps([self.value, list(self.ids)], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def read(cls, token: str) -> Resume:
        bad = InvalidStoreInput("offset: not the `next` of a page in this order")
        if not isinstance(token, str) or len(token) > MAX_TOKEN:
            raise bad
        try:
            value, ids = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except (binascii.Error, ValueError, TypeError):
            raise bad from None
        if type(value) is not int or not _FIRST <= value <= _LAST or not isinstance(ids, list) or \
                not all(isinstance(i, str) for i in ids):
            raise bad
        return cls(value, tuple(point_id(i) for i in ids))

    @property
    def start(self) -> str:
        """The value as the engines take it: a datetime with its microseconds."""
        return (_EPOCH + timedelta(microseconds=self.value)).isoformat()


def order_field(order_by: str) -> tuple[str, bool]:
    """"field" (oldest first) or "-field" (newest first) -> (field, newest first)."""
    if not isinstance(order_by, str) or not ORDER_BY.fullmatch(order_by):
        raise InvalidStoreInput(f"order_by: a field's name, '-' before it for the newest first; got {order_by!r}")
    return order_by.removeprefix("-"), order_by.startswith("-")


def ordered_page(fetch: Fetch, limit: int, offset: str | None, filter: Filter | None, order_by: str,
                 with_vector: bool) -> tuple[list[Point], str | None]:
    """One page in `order_by`'s order from `offset` (a previous page's token; None: the first), and the next page's
    token (None after the last). Points without the field are in no page."""
    field, newest_first = order_field(order_by)
    after = None if offset is None else Resume.read(offset)
    if after is not None:
        filter = excluding(filter, after.ids)
    rows = fetch(limit + 1, field, newest_first, None if after is None else after.start, filter, with_vector)
    page = rows[:limit]
    if len(rows) <= limit:
        return [p for p, _ in page], None
    last = page[-1][1]
    shown = [p.id for p, value in page if value == last]
    if after is not None and after.value == last:  # a run of one value longer than a page
        shown = list(after.ids) + shown
    return [p for p, _ in page], Resume(last, tuple(shown)).token()
