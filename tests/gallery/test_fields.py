"""The fields of a dog, defined once: what a user may set and how it is stored."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dogsearch.gallery.fields import (
    FIELDS,
    HIDDEN_FIELDS,
    INDEXED_FIELDS,
    InvalidFields,
    match_key,
    match_keys,
    public,
    search_filter,
    user_fields,
)


def test_report_fields_are_checked_and_stored_in_one_form():
    stored = user_fields({"status": "lost", "location": "52.52, 13.405", "seen_at": "2026-11-30T18:05:00+01:00",
                          "color": "brown", "tags": ["shy", "old"]})
    assert stored == {"status": "lost", "location": {"lat": 52.52, "lon": 13.405},
                      "seen_at": "2026-11-30T17:05:00+00:00", "color": "brown", "tags": ["shy", "old"]}
    assert user_fields({"location": {"lat": -33.9, "lon": 151.2}})["location"] == {"lat": -33.9, "lon": 151.2}
    assert user_fields({"seen_at": "2026-11-30T08:00"})["seen_at"] == "2026-11-30T08:00:00+00:00"  # no zone: UTC


def test_a_free_texts_line_breaks_are_stored_as_lf_however_they_came():
    """A browser's form sends a textarea's line breaks as CRLF: stored as they came, the same notes would read as
    changed to a client that compares them with its own (LF) text."""
    stored = user_fields({"notes": "shy\r\nlimps\rold\n", "tags": ["a\r\nb", 3], "age": 3})
    assert stored == {"notes": "shy\nlimps\nold\n", "tags": ["a\nb", 3], "age": 3}
    assert user_fields({"notes": "x\r\n\r\ny"}, removing=True) == {"notes": "x\n\ny"}


@pytest.mark.parametrize(("fields", "words"), [
    ({"status": "stolen"}, "one of lost"),
    ({"location": "52.5"}, "lat,lon"),
    ({"location": "91,0"}, "latitude -90..90"),
    ({"location": {"lat": 1}}, "lat,lon"),
    ({"seen_at": "yesterday"}, "ISO 8601"),
    ({"seen_at": "2062-11-30T08:00:00+01:00"}, "2062-11-30T07:00:00\\+00:00 is in the future"),  # 2026 mistyped
    ({"sha256": "x"}, "set by the server"),
    ({"dog_id": "x"}, "set by the server"),
    ({"phash": "x"}, "set by the server"),
    ({"1st": "x"}, "field name"),
    ({"nested": {"a": 1}}, "must be a string"),
    ({"name": 12345}, "a text"),  # as the add form's `name`: a string, at most 200 characters
    ({"breed": ["beagle"]}, "a text"),
    ({"name": "R" * 201}, "at most 200 characters"),
    ({"name": "Rex\x00"}, "control character"),
    ({"notes": "a\ud800b"}, "lone surrogate"),  # was a UnicodeEncodeError (a 500) measuring the fields
    ({"breed": "beagle\n<b>"}, "control character"),
])
def test_bad_fields_are_refused_with_a_reason(fields, words):
    with pytest.raises(InvalidFields, match=words):
        user_fields(fields)


def test_the_entry_structure_is_neither_shown_nor_filtered_on():
    assert {"dog_id", "photo_id", "cover", "owner"} <= HIDDEN_FIELDS and "box" not in HIDDEN_FIELDS
    assert public({"dog_id": "a", "cover": True, "breed": "pug", "format": "JPEG"}) == {"breed": "pug",
                                                                                       "format": "JPEG"}
    with pytest.raises(InvalidFields, match="cover"):
        search_filter(None, None, '{"cover": false}')
    assert search_filter("pug", None, '{"format": "PNG", "color": ["a", "b"]}') == {
        "format": "PNG", "color": ["a", "b"], "breed_key": "pug"}


def test_indexes_come_from_the_one_table():
    assert INDEXED_FIELDS == {f.name: f.index for f in FIELDS if f.index}
    assert INDEXED_FIELDS["dog_id"] == "keyword" and INDEXED_FIELDS["location"] == "geo"
    assert INDEXED_FIELDS["seen_at"] == "datetime" and INDEXED_FIELDS["cover"] == "bool"


@pytest.mark.parametrize(("fields", "words"), [
    ({f"f{i}": "x" for i in range(65)}, "65 fields, limit 64"),
    ({"notes": "x" * 4097}, "longer than 4096 bytes"),
    ({"notes": "\u00e9" * 2049}, "longer than 4096 bytes"),  # bytes, not characters
    ({"tags": ["x"] * 65}, "65 values"),
    ({"tags": ["x" * 4097]}, "longer than 4096"),
    ({f"f{i}": "x" * 4000 for i in range(5)}, "bytes of fields, limit 16384"),
], ids=["count", "value", "utf8-value", "list", "list-value", "total"])
def test_fields_over_their_bounds_are_too_large(fields, words):
    from dogsearch.gallery.fields import FieldsOverLimit, check_fields_size

    with pytest.raises(FieldsOverLimit, match=words):
        check_fields_size(fields)
    check_fields_size({"name": "Rex", "notes": "x" * 4096, "tags": ["a"] * 64})


def test_json_text_is_bounded_in_size_and_depth():
    from dogsearch.gallery.fields import FieldsOverLimit, parse_json_object

    with pytest.raises(FieldsOverLimit, match="larger than"):
        parse_json_object('{"a": "' + "x" * 20_000 + '"}', "payload")
    for deep in ("[" * 5000 + "]" * 5000, '{"a": ' * 9 + "1" + "}" * 9):
        with pytest.raises(InvalidFields, match="nested deeper"):
            parse_json_object('{"x": ' + deep + "}", "payload")


def test_a_report_may_be_a_little_ahead_of_this_clock():
    """A time without its zone meant in Kiritimati (UTC+14), or a phone's clock a few minutes fast."""
    ahead = (datetime.now(UTC) + timedelta(hours=14)).replace(microsecond=0)
    assert user_fields({"seen_at": ahead.isoformat()})["seen_at"] == ahead.isoformat()


def test_a_breed_or_a_name_is_matched_without_case_accents_or_separators():
    # a phone's en dash, a dot, a zero-width space, the words run together
    spelled = ("Shih-Tzu", "shih tzu", " SHIH_TZU ", "Shih – Tzu", "Shih.Tzu", "Shih\u200bTzu", "ShihTzu")
    assert {match_key(b) for b in spelled} == {"shihtzu"} and match_key("Bull Mastiff") == match_key("Bullmastiff")
    assert match_key("Zoë") == "zoe" and match_key("Beagle") == "beagle"
    assert match_keys({"breed": "Beagle", "name": ["Rex", "T-Rex"], "color": "tan"}) == {
        "breed_key": "beagle", "name_key": ["rex", "trex"]}
    # a value that is no text: a number by its text; anything else no key, so none of an earlier value stays
    assert match_keys({"breed": 7, "name": None}) == {"breed_key": "7", "name_key": None}
    assert search_filter("BEAGLE", "rex", '{"color": "tan"}') == {"color": "tan", "breed_key": "beagle",
                                                                  "name_key": "rex"}
    assert search_filter(None, None, '{"breed": ["Shih-Tzu", "Pug"]}') == {"breed_key": ["shihtzu", "pug"]}
    assert search_filter(None, None, '{"breed": true}') == {"breed": True}  # a flag: the field itself
    assert search_filter("---", None, None) == {"breed": "---"}  # no letters or digits: as given, not every "" key
    with pytest.raises(InvalidFields, match="not a field"):
        search_filter(None, None, '{"breed_key": "pug"}')  # the key is the server's


@pytest.mark.parametrize("refused", [
    lambda: user_fields({"seen_at": "x" * 3000}),
    lambda: user_fields({"status": "x" * 3000}),
    lambda: user_fields({"x" * 3000: "a"}),
    lambda: search_filter(None, None, '{"%s": 1}' % ("k" * 5000)),
])
def test_a_refusal_names_at_most_a_little_of_the_value_sent(refused):
    with pytest.raises(InvalidFields) as info:
        refused()
    assert len(info.value.reason) < 200 and "characters)" in info.value.reason
