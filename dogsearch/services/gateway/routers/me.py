"""Who the caller is, for the web UI's sign-in: the key's name and scopes, whether the service is open or lets
anyone search, and whether bulk jobs may read the server's own folders (which ones: an admin's to see, as paths on the
server say more than others need). A key nobody issued is a 401 (security.Access), so a sign-in with a wrong key
fails here."""
from __future__ import annotations

from fastapi import APIRouter

from dogsearch.core.access import scopes_of
from dogsearch.services.gateway.deps import CallerDep, JobsDep, SettingsDep
from dogsearch.services.gateway.schemas import Me
from dogsearch.services.gateway.settings import GatewaySettings


def router(settings: GatewaySettings) -> APIRouter:
    api = APIRouter(prefix="/v1/me", tags=["access"])

    @api.get("", response_model=Me)
    async def me(caller: CallerDep, settings: SettingsDep, jobs: JobsDep) -> Me:
        # Without a key: no scope (what anonymous search allows is said apart), unless the service is open.
        scope = caller.scope if caller.name is not None or caller.open else None
        roots = [str(root) for root in jobs.settings.allowed_roots]
        return Me(name=caller.name, scope=scope, scopes=scopes_of(scope), open=caller.open,
                  anonymous_search=settings.anonymous_search, server_folders=bool(roots),
                  allowed_roots=roots if caller.may("admin") else None)

    return api
