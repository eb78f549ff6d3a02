"""The workspace's API keys (create one, shown once; revoke) and its egress settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ...store import LastKey
from ..routes.tenants import key_out, settings_out
from ..schemas import ApiKeyIn
from .auth import PlatformDep, ViewerDep, form
from .render import PageError, checked_id, not_found, page, redirect

router = APIRouter(include_in_schema=False)


async def _keys_page(
    request: Request,
    viewer: ViewerDep,
    platform: PlatformDep,
    *,
    status: int = 200,
    created: Any = None,
    error: str | None = None,
) -> Response:
    async with platform.store.read() as repos:
        keys = [key_out(k) for k in await repos.keys.all(viewer.ws)]
        settings = settings_out(platform, viewer.ws.id, await repos.settings.get(viewer.ws))
    return page(
        request,
        "keys.html",
        status=status,
        nav="keys",
        keys=keys,
        current=viewer.principal.key_id,
        operator=viewer.principal.operator,
        settings=settings,
        created=created,
        error=error,
        revoked=request.query_params.get("revoked"),
    )


@router.get("/keys")
async def keys_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    return await _keys_page(request, viewer, platform)


@router.post("/keys")
async def create_key(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    fields = await form(request)
    try:
        body = ApiKeyIn(
            name=fields.get("name", "").strip() or "api key",
            operator=fields.get("operator") == "on",
        )
    except ValidationError:
        return await _keys_page(
            request, viewer, platform, status=422, error="A key's name is 1 to 100 characters."
        )
    if body.operator and not viewer.principal.operator:
        raise PageError(403, "Refused", "Only an operator key can create operator keys.")
    async with platform.store.write() as repos:
        new = await repos.keys.create(viewer.ws, body.name, operator=body.operator)
    # Shown on this response only (never stored in the clear, never shown again).
    return await _keys_page(request, viewer, platform, status=201, created=new)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(
    request: Request, key_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    try:
        async with platform.store.write() as repos:
            key = await repos.keys.revoke(viewer.ws, checked_id(key_id))
    except LastKey as exc:
        return await _keys_page(request, viewer, platform, status=409, error=str(exc))
    if key is None:
        raise not_found()
    if key.id == viewer.principal.key_id:
        return redirect("/login")  # this session's own key: it no longer signs anything in
    return redirect(f"/keys?revoked={key.id}")
