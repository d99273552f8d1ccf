"""Domain errors <-> HTTP, in one place: every service answers a DogsearchError with the status of its kind and
`{"detail": reason, "code": code}`; the clients raise the same error class again from such an answer."""
from __future__ import annotations

import logging
import math
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from dogsearch.core.boxes import BadBox
from dogsearch.core.errors import (
    Conflict,
    DogsearchError,
    Forbidden,
    InvalidInput,
    NotFound,
    StorageFull,
    TimedOut,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMedia,
    kinds,
    without_paths,
)
from dogsearch.core.images import ImageRejected

log = logging.getLogger("dogsearch.http")

STATUS: dict[type[DogsearchError], int] = {
    TooLarge: 413,
    UnsupportedMedia: 415,
    InvalidInput: 422,
    NotFound: 404,
    Unauthenticated: 401,
    Forbidden: 403,
    Conflict: 409,
    Unavailable: 503,
    TimedOut: 504,
    StorageFull: 507,  # Insufficient Storage: the server's disk, not the request
}
KIND_OF_STATUS = {status: kind for kind, status in STATUS.items()} | {400: InvalidInput, 429: Unavailable}


def status_of(exc: DogsearchError) -> int:
    """The status of the error's kind: the first kind in its MRO (a TooLarge is an InvalidInput too, and comes
    first; a SourceForbidden(Forbidden, JobInputError) is a Forbidden though JobInputError is an InvalidInput)."""
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), 500)


def error_response(exc: DogsearchError, **said: Any) -> JSONResponse:
    """`said`: more of the refusal, for a client to act on (the id of the dog or job it names)."""
    status = status_of(exc)
    headers = None
    if status == 503:
        headers = {"Retry-After": str(retry_after(getattr(exc, "retry_after_s", None)))}
    elif status == 401:
        headers = {"WWW-Authenticate": "Bearer"}  # a key goes in Authorization: Bearer (or X-API-Key)
    # A server's own failure may name its files (a missing weights file, a data folder): the log keeps them.
    reason = without_paths(exc.reason) if status >= 500 else exc.reason
    return JSONResponse({"detail": reason, "code": exc.code, **said}, status_code=status, headers=headers)


def retry_after(wait_s: float | None) -> int:
    """A Retry-After (a 503's, a 429's), in whole seconds, at least 1: `wait_s` rounded up, where it is known (a
    model waiting out its back-off after a failed load: asked sooner, it only fails again; a rate limit's bucket),
    else 1 (a full queue or a restarting service: soon)."""
    return 1 if wait_s is None else max(1, math.ceil(wait_s))


class MalformedBody(InvalidInput):
    """A request body that cannot be read as what its Content-Type says: a broken multipart form, JSON that does not
    parse (nested too deep, not UTF-8)."""


class FormTooLarge(TooLarge):
    """A form over the parser's limits: too many fields or files, or a field (not a file) too large."""


def install_error_mapping(app: FastAPI) -> None:
    @app.exception_handler(DogsearchError)
    async def domain_error(_: Request, exc: DogsearchError) -> JSONResponse:
        if status_of(exc) == 500:
            log.error("internal error", exc_info=exc)
        elif exc.__cause__ is not None and status_of(exc) == 503:  # what failed underneath, for the operator only
            log.warning("%s: %s", exc.reason, exc.__cause__)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's list of what is wrong with the request, each value sent echoed at most ECHOED characters: a
        20 KB field is not sent back whole. A JSON body that does not parse, or one sent as another type (FastAPI
        then leaves it bytes), is said as the domain says it."""
        errors = exc.errors()
        if unparsed := next((e for e in errors if e.get("type") == "json_invalid"), None):
            return error_response(MalformedBody(f"the body is not valid JSON: {unparsed['ctx']['error']} at "
                                                f"position {unparsed['loc'][-1]}"))
        if isinstance(exc.body, bytes) and exc.body:
            sent = request.headers.get("content-type", "no Content-Type")
            return error_response(UnsupportedMedia(f"the body must be application/json, not {sent}"))
        errors = [{k: _echoed(v) if k == "input" else v for k, v in e.items() if k != "url"} for e in errors]
        return JSONResponse({"detail": _text(jsonable_encoder(errors)), "code": "invalid_input"}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        """Starlette's and FastAPI's own refusals (no such route, another method, a body they cannot parse) with a
        code, as every other error answer has."""
        if (unreadable := _unreadable_body(exc)) is not None:
            return error_response(unreadable)
        if exc.status_code in (204, 304) or exc.status_code < 200:  # no body allowed
            return Response(status_code=exc.status_code, headers=exc.headers)
        return JSONResponse({"detail": exc.detail, "code": _code_of(exc.status_code)}, status_code=exc.status_code,
                            headers=exc.headers)


def _unreadable_body(exc: HTTPException) -> DogsearchError | None:
    """What a 400 about the body stands for: Starlette raises it from a MultiPartException (a broken form, or one
    over its limits), FastAPI from what json.loads raised besides a syntax error (RecursionError, a
    UnicodeDecodeError)."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, MultiPartException):
        over = cause.message.startswith("Too many") or "exceeded maximum size" in cause.message
        return (FormTooLarge if over else MalformedBody)(cause.message)
    if exc.status_code == 400 and isinstance(cause, RecursionError):
        return MalformedBody("the body is not valid JSON: nested too deeply")
    if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        return MalformedBody(f"the body is not valid JSON: not UTF-8 ({cause.reason} at byte {cause.start})")
    if exc.status_code == 400 and isinstance(cause, ValueError):  # json.loads's last: over 4300 digits
        return MalformedBody("the body is not valid JSON: a number of more than 4300 digits")
    return None


def _code_of(status: int) -> str:
    """405 -> method_not_allowed."""
    try:
        return re.sub(r"\W+", "_", HTTPStatus(status).phrase).lower()
    except ValueError:
        return "error"


ECHOED = 64


def _echoed(value: Any) -> Any:
    if isinstance(value, str | bytes) and len(value) > ECHOED:
        return f"{value[:ECHOED]!s}... ({len(value)} characters)"
    if isinstance(value, dict | list) and len(str(value)) > ECHOED:
        return f"(a {type(value).__name__} of {len(value)})"
    return value


def _text(value: Any) -> Any:
    """Every string of an answer encodable as UTF-8: a lone surrogate the caller sent (a key, a value) is echoed
    as its escape, not a UnicodeEncodeError (a 500) from the answer's rendering."""
    if isinstance(value, str):
        return value.encode(errors="backslashreplace").decode()
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


class UpstreamFailure(Unavailable):
    """Another service failed (a 5xx) or could not be reached: for this service's caller, that part is down."""


def _said(detail: Any) -> str:
    """An answer's `detail` in words: a request's validation errors ([{"loc", "msg"}]) as "field: message; ..."."""
    if isinstance(detail, list) and detail and all(isinstance(e, dict) and "msg" in e for e in detail):
        return "; ".join(f"{'.'.join(str(part) for part in e.get('loc', ())[1:]) or 'request'}: {e['msg']}"
                         for e in detail)
    return detail if isinstance(detail, str) else str(detail)


def from_response(service: str, status: int, body: Any, *, named: bool = True, callers_key: bool = False,
                  retry_after_s: float | None = None) -> DogsearchError:
    """The error a service's error answer stands for, its reason prefixed with the service's name (unless not
    `named`: the answer about one of a request's photos, in that photo's words): its own class when the answer names
    a known `code` of the status's kind (a CollectionMissing, not any Conflict), else the kind of the status. A 5xx
    is an UpstreamFailure: the caller's request was fine, a part behind it is not; so is a 401, the credentials of
    the service that asked, unless the key is the caller's own (`callers_key`: the CLI's, to a gateway).
    `retry_after_s`: the answer's Retry-After, kept on an Unavailable so that this service's 503 says it too."""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    reason = without_paths(_said(detail))  # passed on: no server paths
    if (status >= 500 and status not in (504, 507)) or (status == 401 and not callers_key):
        return UpstreamFailure(f"{service} unavailable: {reason}", source=service, retry_after_s=retry_after_s)
    kind = KIND_OF_STATUS.get(status, InvalidInput if status < 500 else TimedOut)
    cls = kinds().get(body.get("code")) if isinstance(body, dict) and isinstance(body.get("code"), str) else None
    if cls is None or not issubclass(cls, kind):
        cls = kind
    named = named and not issubclass(cls, ImageRejected | BadBox)  # the caller's own photo or box: said as is
    return cls(f"{service}: {reason}" if named else reason, source=service)
