"""Functions under an agent, and every version each has had.

Each change (create, update, restore, delete) writes a version row in the same transaction as
the function row; the current row is locked while its next version number is taken, so two
concurrent writers get consecutive versions, never the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import SecretBox
from ..ids import new_id
from ..models import AgentRow, FunctionRow, FunctionVersionRow
from ..protocol import NameTaken, StoreError
from ..records import Change, FunctionRecord, VersionRecord, Workspace, now_us
from .agents import seal, unseal
from .changes import ChangeLog


def _taken(name: str) -> NameTaken:
    return NameTaken(f"this agent already has a function named {name!r}")


class SqlFunctions:
    def __init__(self, session: AsyncSession, box: SecretBox, log: ChangeLog) -> None:
        self._s = session
        self._box = box
        self._log = log

    def _record(self, row: FunctionRow) -> FunctionRecord:
        return FunctionRecord(
            row.id,
            row.agent_id,
            row.name,
            row.version,
            row.document,
            unseal(self._box, row.secrets),
            tuple(row.secret_names),
            row.dialect,
            row.created_us,
            row.updated_us,
        )

    def _version(self, row: FunctionVersionRow) -> VersionRecord:
        change: Change = row.change  # type: ignore[assignment]  # written only from Change
        return VersionRecord(
            row.function_id,
            row.version,
            row.agent_id,
            row.name,
            row.document,
            unseal(self._box, row.secrets),
            tuple(row.secret_names),
            row.dialect,
            change,
            row.restored_from,
            row.created_us,
        )

    def _add_version(
        self, ws: Workspace, row: FunctionRow, change: Change, src: int | None
    ) -> None:
        self._s.add(
            FunctionVersionRow(
                workspace_id=ws.id,
                function_id=row.id,
                version=row.version,
                agent_id=row.agent_id,
                name=row.name,
                document=row.document,
                secrets=row.secrets,
                secret_names=row.secret_names,
                dialect=row.dialect,
                change=change,
                restored_from=src,
                created_us=row.updated_us,
            )
        )

    async def _name_free(self, ws: Workspace, agent_id: str, name: str, fid: str | None) -> None:
        other = await self._s.scalar(
            select(FunctionRow.id).where(
                FunctionRow.workspace_id == ws.id,
                FunctionRow.agent_id == agent_id,
                FunctionRow.name == name,
            )
        )
        if other is not None and other != fid:
            raise _taken(name)

    async def create(
        self,
        ws: Workspace,
        agent_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        dialect: str,
    ) -> FunctionRecord:
        agent = await self._s.scalar(
            select(AgentRow.id).where(AgentRow.workspace_id == ws.id, AgentRow.id == agent_id)
        )
        if agent is None:
            raise StoreError(f"no agent {agent_id}", "agent_id")
        await self._name_free(ws, agent_id, name, None)
        at = now_us()
        row = FunctionRow(
            workspace_id=ws.id,
            id=new_id("fn"),
            agent_id=agent_id,
            name=name,
            version=1,
            document=document,
            secrets=seal(self._box, secrets),
            secret_names=list(secret_names),
            dialect=dialect,
            created_us=at,
            updated_us=at,
        )
        self._s.add(row)
        self._add_version(ws, row, "create", None)
        try:
            await self._s.flush()
        except IntegrityError:
            raise _taken(name) from None
        await self._log.emit(ws, "functions", agent_id)
        return self._record(row)

    async def _row(
        self, ws: Workspace, agent_id: str, function_id: str, lock: bool = False
    ) -> FunctionRow | None:
        query = select(FunctionRow).where(
            FunctionRow.workspace_id == ws.id,
            FunctionRow.agent_id == agent_id,
            FunctionRow.id == function_id,
        )
        return await self._s.scalar(query.with_for_update() if lock else query)

    async def get(self, ws: Workspace, agent_id: str, function_id: str) -> FunctionRecord | None:
        row = await self._row(ws, agent_id, function_id)
        return self._record(row) if row is not None else None

    async def by_name(self, ws: Workspace, agent_id: str, name: str) -> FunctionRecord | None:
        row = await self._s.scalar(
            select(FunctionRow).where(
                FunctionRow.workspace_id == ws.id,
                FunctionRow.agent_id == agent_id,
                FunctionRow.name == name,
            )
        )
        return self._record(row) if row is not None else None

    async def all(self, ws: Workspace, agent_id: str) -> list[FunctionRecord]:
        rows = await self._s.scalars(
            select(FunctionRow)
            .where(FunctionRow.workspace_id == ws.id, FunctionRow.agent_id == agent_id)
            .order_by(FunctionRow.created_us, FunctionRow.id)
        )
        return [self._record(r) for r in rows]

    async def update(
        self,
        ws: Workspace,
        agent_id: str,
        function_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        dialect: str,
        change: Change = "update",
        restored_from: int | None = None,
    ) -> FunctionRecord | None:
        row = await self._row(ws, agent_id, function_id, lock=True)
        if row is None:
            return None
        if name != row.name:
            await self._name_free(ws, agent_id, name, function_id)
        row.name = name
        row.version += 1
        row.document = document
        row.secrets = seal(self._box, secrets)
        row.secret_names = list(secret_names)
        row.dialect = dialect
        row.updated_us = now_us()
        self._add_version(ws, row, change, restored_from)
        try:
            await self._s.flush()
        except IntegrityError:
            raise _taken(name) from None
        await self._log.emit(ws, "functions", agent_id)
        return self._record(row)

    async def delete(self, ws: Workspace, agent_id: str, function_id: str) -> bool:
        row = await self._row(ws, agent_id, function_id, lock=True)
        if row is None:
            return False
        row.version += 1
        row.updated_us = now_us()
        self._add_version(ws, row, "delete", None)
        await self._s.delete(row)
        await self._s.flush()
        await self._log.emit(ws, "functions", agent_id)
        return True

    async def versions(
        self, ws: Workspace, agent_id: str, function_id: str
    ) -> list[VersionRecord] | None:
        if await self._row(ws, agent_id, function_id) is None:
            return None
        rows = await self._s.scalars(
            select(FunctionVersionRow)
            .where(
                FunctionVersionRow.workspace_id == ws.id,
                FunctionVersionRow.function_id == function_id,
            )
            .order_by(FunctionVersionRow.version.desc())
        )
        return [self._version(r) for r in rows]

    async def version(
        self, ws: Workspace, agent_id: str, function_id: str, version: int
    ) -> VersionRecord | None:
        if await self._row(ws, agent_id, function_id) is None:
            return None
        row = await self._s.get(FunctionVersionRow, (ws.id, function_id, version))
        return self._version(row) if row is not None else None
