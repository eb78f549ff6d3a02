"""Workspaces, API keys and operator settings."""

from __future__ import annotations

from fastapi import APIRouter

from ...store import ApiKey, LastKey, NameTaken, Settings, Workspace
from ...validation import Problem
from ..deps import OperatorDep, PlatformDep, PrincipalDep, WorkspaceDep
from ..errors import ApiError, invalid, not_found
from ..executors import Policy, check_allow
from ..platform import Platform
from ..schemas import (
    ERRORS,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    EffectiveSettings,
    ErrorOut,
    KeyId,
    SettingsIn,
    SettingsOut,
    WorkspaceCreated,
    WorkspaceId,
    WorkspaceIn,
    WorkspaceOut,
    at,
    iso,
)

FORBIDDEN: dict[int | str, dict[str, object]] = {
    403: {"model": ErrorOut, "description": "Needs an operator key"}
}
router = APIRouter(prefix="/v1", tags=["workspaces"], responses=ERRORS)


def workspace_out(ws: Workspace) -> WorkspaceOut:
    return WorkspaceOut(id=ws.id, name=ws.name, created_at=at(ws.created_us))


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        operator=key.operator,
        created_at=at(key.created_us),
        revoked_at=iso(key.revoked_us),
    )


@router.get("/workspace", summary="The workspace of the key in use")
async def current_workspace(ws: WorkspaceDep) -> WorkspaceOut:
    return workspace_out(ws)


@router.get("/api-keys", summary="This workspace's API keys (never the keys themselves)")
async def list_keys(ws: WorkspaceDep, platform: PlatformDep) -> list[ApiKeyOut]:
    async with platform.store.read() as repos:
        return [key_out(k) for k in await repos.keys.all(ws)]


@router.post(
    "/api-keys",
    status_code=201,
    summary="Create an API key (shown once)",
    responses=FORBIDDEN,
)
async def create_key(body: ApiKeyIn, caller: PrincipalDep, platform: PlatformDep) -> ApiKeyCreated:
    if body.operator and not caller.operator:
        raise ApiError(403, "forbidden", "only an operator key can create operator keys")
    async with platform.store.write() as repos:
        new = await repos.keys.create(caller.workspace, body.name, operator=body.operator)
    return ApiKeyCreated(**key_out(new.record).model_dump(), key=new.secret)


@router.delete(
    "/api-keys/{key_id}",
    summary="Revoke an API key",
    responses={409: {"model": ErrorOut, "description": "The workspace's last active key"}},
)
async def revoke_key(key_id: KeyId, ws: WorkspaceDep, platform: PlatformDep) -> ApiKeyOut:
    try:
        async with platform.store.write() as repos:
            key = await repos.keys.revoke(ws, key_id)
    except LastKey as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if key is None:
        raise not_found(f"API key {key_id}")
    return key_out(key)


# ------------------------------------------------------------------------- operator


@router.get("/workspaces", summary="Every workspace (operator)", responses=FORBIDDEN)
async def list_workspaces(_: OperatorDep, platform: PlatformDep) -> list[WorkspaceOut]:
    async with platform.store.read() as repos:
        return [workspace_out(w) for w in await repos.workspaces.all()]


@router.post(
    "/workspaces",
    status_code=201,
    summary="Create a workspace and its first key (operator)",
    responses=FORBIDDEN,
)
async def create_workspace(
    body: WorkspaceIn, _: OperatorDep, platform: PlatformDep
) -> WorkspaceCreated:
    try:
        async with platform.store.write() as repos:
            ws = await repos.workspaces.create(body.name)
            new = await repos.keys.create(ws, "first key")
    except NameTaken as exc:
        raise invalid([Problem("$.name", str(exc), "choose another name", body.name)]) from None
    return WorkspaceCreated(
        workspace=workspace_out(ws),
        api_key=ApiKeyCreated(**key_out(new.record).model_dump(), key=new.secret),
    )


def settings_out(platform: Platform, ws_id: str, settings: Settings) -> SettingsOut:
    policy = Policy.effective(platform.config.egress, settings)
    return SettingsOut(
        workspace_id=ws_id,
        settings=SettingsIn(
            allow=list(settings.allow) if settings.allow is not None else None,
            allow_private_network=settings.allow_private_network,
            https_only=settings.https_only,
            sandbox_mode=settings.sandbox_mode,
        ),
        effective=EffectiveSettings(
            allow=list(policy.allow),
            allow_private_network=policy.allow_private_network,
            https_only=policy.https_only,
            sandbox_mode=policy.sandbox_mode,
        ),
    )


@router.get("/settings", summary="This workspace's egress and sandbox settings")
async def own_settings(ws: WorkspaceDep, platform: PlatformDep) -> SettingsOut:
    async with platform.store.read() as repos:
        return settings_out(platform, ws.id, await repos.settings.get(ws))


async def _workspace(platform: Platform, workspace_id: str) -> Workspace:
    async with platform.store.read() as repos:
        ws = await repos.workspaces.get(workspace_id)
    if ws is None:
        raise not_found(f"workspace {workspace_id}")
    return ws


@router.get(
    "/workspaces/{workspace_id}/settings",
    summary="A workspace's settings (operator)",
    responses=FORBIDDEN,
)
async def get_settings(
    workspace_id: WorkspaceId, _: OperatorDep, platform: PlatformDep
) -> SettingsOut:
    ws = await _workspace(platform, workspace_id)
    async with platform.store.read() as repos:
        return settings_out(platform, ws.id, await repos.settings.get(ws))


@router.put(
    "/workspaces/{workspace_id}/settings",
    summary="Set a workspace's egress allow-list, https-only and sandbox mode (operator)",
    responses=FORBIDDEN,
)
async def put_settings(
    workspace_id: WorkspaceId, body: SettingsIn, _: OperatorDep, platform: PlatformDep
) -> SettingsOut:
    allow = tuple(a.strip() for a in body.allow) if body.allow is not None else None
    bad = check_allow(allow or ())
    if bad:
        raise invalid(
            Problem(
                f"$.allow[{i}]",
                message,
                "write a host, *.domain or CIDR",
                allow[i] if allow else None,
            )
            for i, message in bad
        )
    ws = await _workspace(platform, workspace_id)
    settings = Settings(allow, body.allow_private_network, body.https_only, body.sandbox_mode)
    async with platform.store.write() as repos:
        await repos.settings.put(ws, settings)
    return settings_out(platform, ws.id, settings)
