"""Who the caller is, for the web UI's sign-in: the key's name and scopes, and whether the service is open or lets
anyone search. A key nobody issued is a 401 (security.Access), so a sign-in with a wrong key fails here."""
from __future__ import annotations

from fastapi import APIRouter

from dogsearch.core.access import scopes_of
from dogsearch.services.gateway.deps import CallerDep, SettingsDep
from dogsearch.services.gateway.schemas import Me
from dogsearch.services.gateway.settings import GatewaySettings


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/me", tags=["access"])

    @api.get("", response_model=Me)
    async def me(caller: CallerDep, settings: SettingsDep) -> Me:
        # Without a key: no scope (what anonymous search allows is said apart), unless the service is open.
        scope = caller.scope if caller.name is not None or caller.open else None
        return Me(name=caller.name, scope=scope, scopes=scopes_of(scope), open=caller.open,
                  anonymous_search=settings.anonymous_search)

    return api
