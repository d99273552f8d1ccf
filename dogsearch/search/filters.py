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

Field names are non-empty strings that do not start with "$": "$not" and "$empty" are the only keys that do, so
they cannot clash with a field (the gallery's field names start with a letter).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dogsearch.search.base import point_id
from dogsearch.search.contract import InvalidStoreInput

NOT, EMPTY = "$not", "$empty"
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


Condition = Match | IsEmpty | HasId


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
        must.append(_match(_field(field, where), value, where))
    return must


def _field(field: Any, where: str) -> str:
    if not isinstance(field, str) or not field:
        raise InvalidStoreInput(f"{where}: a field name is a non-empty string, got {_show(field)}")
    if field.startswith("$"):
        raise InvalidStoreInput(f"{where}: unknown operator {field!r} (there are {NOT} and {EMPTY}; field names "
                                "cannot start with '$')")
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


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
