"""Agents: their settings as a document (secret variables masked, their values encrypted)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import SecretBox
from ..ids import decode_cursor, encode_cursor, new_id
from ..models import AgentRow, FunctionRow
from ..protocol import NameTaken
from ..records import AgentRecord, Page, Workspace, now_us
from .changes import ChangeLog


def seal(box: SecretBox, secrets: dict[str, Any]) -> str | None:
    return box.encrypt(secrets) if secrets else None


def unseal(box: SecretBox, token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    value = box.decrypt(token)
    return value if isinstance(value, dict) else {}


class SqlAgents:
    def __init__(self, session: AsyncSession, box: SecretBox, log: ChangeLog) -> None:
        self._s = session
        self._box = box
        self._log = log

    def _record(self, row: AgentRow) -> AgentRecord:
        return AgentRecord(
            row.id,
            row.name,
            row.document,
            unseal(self._box, row.secrets),
            tuple(row.secret_names),
            row.created_us,
            row.updated_us,
        )

    async def _name_free(self, ws: Workspace, name: str, agent_id: str | None) -> None:
        other = await self._s.scalar(
            select(AgentRow.id).where(AgentRow.workspace_id == ws.id, AgentRow.name == name)
        )
        if other is not None and other != agent_id:
            raise NameTaken(f"another agent in this workspace is named {name!r}")

    async def create(
        self,
        ws: Workspace,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
        agent_id: str | None = None,
    ) -> AgentRecord:
        await self._name_free(ws, name, None)
        at = now_us()
        row = AgentRow(
            workspace_id=ws.id,
            id=agent_id or new_id("agent"),
            name=name,
            document=document,
            secrets=seal(self._box, secrets),
            secret_names=list(secret_names),
            created_us=at,
            updated_us=at,
        )
        self._s.add(row)
        try:
            await self._s.flush()
        except IntegrityError:
            raise NameTaken(f"another agent in this workspace is named {name!r}") from None
        await self._log.emit(ws, "agent", row.id)
        return self._record(row)

    async def _row(self, ws: Workspace, agent_id: str, lock: bool = False) -> AgentRow | None:
        query = select(AgentRow).where(AgentRow.workspace_id == ws.id, AgentRow.id == agent_id)
        return await self._s.scalar(query.with_for_update() if lock else query)

    async def get(self, ws: Workspace, agent_id: str) -> AgentRecord | None:
        row = await self._row(ws, agent_id)
        return self._record(row) if row is not None else None

    async def by_name(self, ws: Workspace, name: str) -> AgentRecord | None:
        row = await self._s.scalar(
            select(AgentRow).where(AgentRow.workspace_id == ws.id, AgentRow.name == name)
        )
        return self._record(row) if row is not None else None

    async def page(self, ws: Workspace, *, limit: int, cursor: str | None) -> Page[AgentRecord]:
        query = select(AgentRow).where(AgentRow.workspace_id == ws.id)
        if cursor is not None:
            created, last_id = decode_cursor(cursor, int, str)
            query = query.where(tuple_(AgentRow.created_us, AgentRow.id) > (created, last_id))
        rows = list(
            await self._s.scalars(query.order_by(AgentRow.created_us, AgentRow.id).limit(limit + 1))
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_us, rows[-1].id) if more else None
        return Page([self._record(r) for r in rows], next_cursor)

    async def update(
        self,
        ws: Workspace,
        agent_id: str,
        *,
        name: str,
        document: dict[str, Any],
        secrets: dict[str, Any],
        secret_names: Sequence[str],
    ) -> AgentRecord | None:
        row = await self._row(ws, agent_id, lock=True)
        if row is None:
            return None
        if name != row.name:
            await self._name_free(ws, name, agent_id)
        row.name = name
        row.document = document
        row.secrets = seal(self._box, secrets)
        row.secret_names = list(secret_names)
        row.updated_us = now_us()
        try:
            await self._s.flush()
        except IntegrityError:
            raise NameTaken(f"another agent in this workspace is named {name!r}") from None
        await self._log.emit(ws, "agent", agent_id)
        return self._record(row)

    async def delete(self, ws: Workspace, agent_id: str) -> bool:
        """Delete the agent and its functions (their versions and executions stay readable)."""
        result = await self._s.execute(
            delete(AgentRow).where(AgentRow.workspace_id == ws.id, AgentRow.id == agent_id)
        )
        if not getattr(result, "rowcount", 0):
            return False
        await self._s.execute(
            delete(FunctionRow).where(
                FunctionRow.workspace_id == ws.id, FunctionRow.agent_id == agent_id
            )
        )
        await self._log.emit(ws, "agent", agent_id)
        return True
