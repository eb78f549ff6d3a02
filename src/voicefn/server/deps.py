"""Request dependencies: the platform, and the workspace behind the Bearer API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..store import Principal, Workspace
from . import logs
from .errors import ApiError
from .freshness import Freshness
from .platform import Platform

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key of the workspace: `Authorization: Bearer vfn_...`",
)


def platform(request: Request) -> Platform:
    found: Platform = request.app.state.platform
    return found


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, secret: str) -> Principal | None:
    """The workspace behind an API key, noted on the request (logs); None when unknown or
    revoked. The Bearer header and the dashboard's session cookie both resolve through this.
    Another process's change is in force first (see :mod:`voicefn.server.freshness`)."""
    freshness: Freshness | None = getattr(request.app.state, "freshness", None)
    if freshness is not None and freshness.stale():
        await freshness.catch_up()
    found = await platform(request).catalog.principal(secret)
    if found is not None:
        request.scope["voicefn.workspace_id"] = found.workspace.id
        logs.workspace_id.set(found.workspace.id)
    return found


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send an API key: Authorization: Bearer vfn_...")
    found = await authenticate(request, credentials.credentials)
    if found is None:
        raise _unauthorized("this API key is unknown or revoked")
    return found


async def workspace(caller: Annotated[Principal, Depends(principal)]) -> Workspace:
    return caller.workspace


async def operator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    if not caller.operator:
        raise ApiError(403, "forbidden", "this needs an operator key (one made by the operator)")
    return caller


PlatformDep = Annotated[Platform, Depends(platform)]
PrincipalDep = Annotated[Principal, Depends(principal)]
WorkspaceDep = Annotated[Workspace, Depends(workspace)]
OperatorDep = Annotated[Principal, Depends(operator)]
