"""The kinds of error the domain raises. Each error says what went wrong in its own words and is of one kind; the
services turn kinds into HTTP statuses in one table (dogsearch/services/errors.py), and their clients turn an
answer's status and `code` back into the same error, so a domain error crosses a process unchanged.

A module's own errors subclass a kind, the kind first when they have a base of their own too:
`class ImageTooLarge(TooLarge, ImageRejected)`: the first kind in an error's MRO is its kind."""
from __future__ import annotations

import re


class DogsearchError(Exception):
    """`reason`: for the user; `code`: a stable name of the error class (for clients across HTTP); `source`: the
    service that raised it, when it came from another process."""

    code = "error"

    def __init__(self, reason: str, *, source: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:  # CollectionMissing -> "collection_missing"
            cls.code = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


class InvalidInput(DogsearchError, ValueError):
    """The caller sent something unusable: a bad field, a malformed filter, a photo that is not one."""


class TooLarge(InvalidInput):
    """Over a size limit (bytes, pixels, files)."""


class UnsupportedMedia(InvalidInput):
    """A file of a kind that is not accepted."""


class NotFound(DogsearchError, LookupError):
    """What was asked for does not exist."""


class Unauthenticated(DogsearchError, PermissionError):
    """No credentials where they are needed, or ones nobody issued."""


class Forbidden(DogsearchError, PermissionError):
    """Exists, but not for this caller."""


class Conflict(DogsearchError):
    """Cannot be done in the current state (a collection of another model, say)."""


class Unavailable(DogsearchError):
    """A part the request needs cannot serve now (a model not loaded, a service down, a full queue): retry later.
    `retry_after_s`: how long until it may serve, where that is known (a model waiting out the back-off after a
    failed load); None: soon."""

    def __init__(self, reason: str, *, source: str | None = None, retry_after_s: float | None = None) -> None:
        super().__init__(reason, source=source)
        self.retry_after_s = retry_after_s


class TimedOut(DogsearchError):
    """Took longer than allowed."""


class StorageFull(DogsearchError):
    """The disk (or the quota) where something had to be stored is full: nothing was stored; retry once there is
    room."""


def kinds() -> dict[str, type[DogsearchError]]:
    """Every error class loaded so far, by code."""
    found: dict[str, type[DogsearchError]] = {}
    stack = [DogsearchError]
    while stack:
        cls = stack.pop()
        found.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return found


# An absolute path in a message (an OSError's, one a service passed on): where the server keeps its files is nobody
# else's business.
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/:,;()\[\]]+/)*[^\s'\"/:,;()\[\]]+")


def without_paths(reason: str) -> str:
    """`reason` with every absolute path in it cut to its file's name (`config.json`): which file, not where."""
    return _PATH.sub(lambda m: m.group(0).rsplit("/", 1)[-1], reason)
