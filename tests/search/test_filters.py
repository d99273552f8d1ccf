"""parse_filter: the JSON form read once into the engine-neutral Filter that each engine translates (what the
engines then match is in test_contract.py)."""
from __future__ import annotations

import uuid

import pytest

from dogsearch.search.contract import InvalidStoreInput
from dogsearch.search.filters import Filter, HasId, IsEmpty, Match, excluding, parse_filter


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
