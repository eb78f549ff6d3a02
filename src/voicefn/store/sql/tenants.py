"""Workspaces, their API keys and their operator settings."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..ids import key_hash, new_id, new_key
from ..models import ApiKeyRow, SettingsRow, WorkspaceRow
from ..protocol import LastKey, NameTaken
from ..records import ApiKey, NewApiKey, Principal, SandboxMode, Settings, Workspace, now_us
from .changes import ChangeLog


def _workspace(row: WorkspaceRow) -> Workspace:
    return Workspace(row.id, row.name, row.created_us)


def _key(row: ApiKeyRow) -> ApiKey:
    return ApiKey(row.id, row.name, row.prefix, row.operator, row.created_us, row.revoked_us)


class SqlWorkspaces:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(self, name: str) -> Workspace:
        if await self.by_name(name) is not None:
            raise NameTaken(f"a workspace named {name!r} exists")
        row = WorkspaceRow(id=new_id("ws"), name=name, created_us=now_us())
        self._s.add(row)
        try:
            await self._s.flush()
        except IntegrityError:
            raise NameTaken(f"a workspace named {name!r} exists") from None
        return _workspace(row)

    async def get(self, workspace_id: str) -> Workspace | None:
        row = await self._s.get(WorkspaceRow, workspace_id)
        return _workspace(row) if row is not None else None

    async def by_name(self, name: str) -> Workspace | None:
        row = await self._s.scalar(select(WorkspaceRow).where(WorkspaceRow.name == name))
        return _workspace(row) if row is not None else None

    async def all(self) -> list[Workspace]:
        rows = await self._s.scalars(select(WorkspaceRow).order_by(WorkspaceRow.created_us))
        return [_workspace(r) for r in rows]

    async def count(self) -> int:
        return int(await self._s.scalar(select(func.count()).select_from(WorkspaceRow)) or 0)


class SqlKeys:
    def __init__(self, session: AsyncSession, log: ChangeLog) -> None:
        self._s = session
        self._log = log

    async def authenticate(self, secret: str) -> Principal | None:
        row = await self._s.execute(
            select(ApiKeyRow.id, ApiKeyRow.operator, WorkspaceRow.id, WorkspaceRow.name)
            .join(WorkspaceRow, WorkspaceRow.id == ApiKeyRow.workspace_id)
            .where(ApiKeyRow.hash == key_hash(secret), ApiKeyRow.revoked_us.is_(None))
        )
        found = row.first()
        if found is None:
            return None
        key_id, operator, ws_id, ws_name = found
        return Principal(Workspace(ws_id, ws_name), key_id, bool(operator))

    async def create(self, ws: Workspace, name: str, *, operator: bool = False) -> NewApiKey:
        secret = new_key()
        row = ApiKeyRow(
            workspace_id=ws.id,
            id=new_id("key"),
            name=name,
            prefix=secret[:12],
            hash=key_hash(secret),
            operator=operator,
            created_us=now_us(),
            revoked_us=None,
        )
        self._s.add(row)
        await self._s.flush()
        return NewApiKey(_key(row), secret)

    async def all(self, ws: Workspace) -> list[ApiKey]:
        rows = await self._s.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.workspace_id == ws.id)
            .order_by(ApiKeyRow.created_us, ApiKeyRow.id)
        )
        return [_key(r) for r in rows]

    async def revoke(self, ws: Workspace, key_id: str) -> ApiKey | None:
        row = await self._s.scalar(
            select(ApiKeyRow)
            .where(ApiKeyRow.workspace_id == ws.id, ApiKeyRow.id == key_id)
            .with_for_update()
        )
        if row is None:
            return None
        if row.revoked_us is None:
            active = await self._s.scalar(
                select(func.count())
                .select_from(ApiKeyRow)
                .where(ApiKeyRow.workspace_id == ws.id, ApiKeyRow.revoked_us.is_(None))
            )
            if (active or 0) <= 1:
                raise LastKey(
                    "this is the workspace's last active key: create another one first",
                    "key_id",
                )
            row.revoked_us = now_us()
            await self._log.emit(ws, "key", row.hash)
        return _key(row)


class SqlSettings:
    def __init__(self, session: AsyncSession, log: ChangeLog) -> None:
        self._s = session
        self._log = log

    async def get(self, ws: Workspace) -> Settings:
        row = await self._s.get(SettingsRow, ws.id)
        if row is None:
            return Settings()
        mode: SandboxMode | None = (
            "unsafe-process"
            if row.sandbox_mode == "unsafe-process"
            else "isolated"
            if row.sandbox_mode == "isolated"
            else None
        )
        return Settings(
            tuple(row.allow) if row.allow is not None else None,
            row.allow_private_network,
            row.https_only,
            mode,
        )

    async def put(self, ws: Workspace, settings: Settings) -> Settings:
        values = {
            "allow": list(settings.allow) if settings.allow is not None else None,
            "allow_private_network": settings.allow_private_network,
            "https_only": settings.https_only,
            "sandbox_mode": settings.sandbox_mode,
            "updated_us": now_us(),
        }
        changed = await self._s.execute(
            update(SettingsRow).where(SettingsRow.workspace_id == ws.id).values(**values)
        )
        if not getattr(changed, "rowcount", 0):
            self._s.add(SettingsRow(workspace_id=ws.id, **values))
            await self._s.flush()
        await self._log.emit(ws, "settings", ws.id)
        return settings
