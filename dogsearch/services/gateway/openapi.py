"""What the public API's OpenAPI document says beyond the routes: how a caller authenticates (an API key in
X-API-Key or as a Bearer token, and the scope each operation needs: security.needed_scope), and the one shape of
every error answer, `{"detail", "code"}` (services/errors.py), for any status an operation does not list itself. A
client generated from /openapi.json then reads a 401, a 429 or a domain 422 as the server sends it."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from dogsearch.services.gateway.security import needed_scope

SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
               "description": "a key made with `dogsearch keys add` (docs/security.md)"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the same key as a Bearer token"},
}
ERROR = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"anyOf": [{"type": "string", "description": "the reason, for a person"},
                             {"type": "array", "items": {"type": "object"},
                              "description": "what is wrong with the request's fields (code invalid_input): "
                                             '[{"loc", "msg", "type"}]'}]},
        "code": {"type": "string", "description": "a stable name of the error: no_dog_found, not_found, ..."},
        "dog_id": {"type": "string", "description": "the stored dog a 409 names (photo_of_another_dog: the dog the "
                                                   "photo is already; photo_stored_already: the dog it is stored as)"},
    },
    "additionalProperties": True,  # some say more: a no_dog_found its `seems`
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def install_openapi(app: FastAPI, *, keys: bool, anonymous_search: bool) -> None:
    """`keys`: the gateway has API keys (else every door is open, as on a laptop's demo); `anonymous_search`: a
    caller without a key may search."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = described(schema, keys=keys, anonymous_search=anonymous_search)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def described(schema: dict[str, Any], *, keys: bool, anonymous_search: bool) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR
    if keys:
        components["securitySchemes"] = SCHEMES
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for status, response in responses.items():
                if not status.startswith(("4", "5")):
                    continue
                # FastAPI's 422 is its own list of field errors; ours also says a domain's reason in a string
                response["content"] = {"application/json": {"schema": _ERROR_REF}}
            responses.setdefault("default", {"description": "an error (any status the operation does not list)",
                                             "content": {"application/json": {"schema": _ERROR_REF}}})
            scope = needed_scope(method.upper(), path)
            if keys and scope is not None:
                operation["security"] = ([{}] if scope == "search" and anonymous_search else []) + [
                    {"ApiKey": []}, {"Bearer": []}]
                operation["description"] = (operation.get("description", "") +
                                            f"\n\nNeeds a key with the **{scope}** scope.").lstrip()
    return schema
