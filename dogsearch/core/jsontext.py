"""JSON text as dogsearch reads what it is sent (a request body, a payload or filter field, a manifest line):
Python's parser takes some text nothing can carry on, which then failed far from where it came in (500s)."""
from __future__ import annotations

import json
from typing import Any


class UnreadableJson(ValueError):
    """JSON that parses as Python reads it, with what no store, answer or other service can take; the reason says
    what."""


def json_text(raw: str | bytes) -> Any:
    """json.loads, refusing a lone surrogate ("\\ud800": a string with no UTF-8, so every later encoding of it
    raised) and an integer over Python's 4300 digits (its ValueError names sys.set_int_max_str_digits) with
    UnreadableJson. A JSONDecodeError, UnicodeDecodeError or RecursionError is raised as json.loads raises it."""
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as exc:  # the only other ValueError of json.loads: a number's digits
        raise UnreadableJson("a number of more than 4300 digits") from exc
    # only an escape makes a surrogate: a UTF-8 decoder refuses encoded ones
    if (b"\\u" if isinstance(raw, bytes) else "\\u") in raw:
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            char = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
            raise UnreadableJson(f"a lone surrogate ({char}), which is not text") from None
    return value
