"""Calls: finished calls a host reported, written once (a repeated report finds the first),
listed newest first, updated with what the post-call extraction found."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import SecretBox
from ..ids import decode_cursor, encode_cursor, new_id
from ..models import ExecutionRow
from ..models_calls import CallRow
from ..records import ExecutionRecord, Page, Workspace, now_us
from .executions import _record as execution_record


@dataclass(frozen=True, slots=True)
class NewCall:
    """A finished call as a host reports it (variables masked, secret ones apart)."""

    agent_id: str
    external_id: str
    execution_id: str
    call_sid: str | None
    from_number: str | None
    to_number: str | None
    language: str
    started_us: int
    ended_us: int
    ended_by: str
    transfer_number: str | None
    transcript: list[dict[str, Any]]
    variables: dict[str, Any]
    secrets: dict[str, Any]
    executions: list[dict[str, Any]]
    functions: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: str
    agent_id: str
    external_id: str
    execution_id: str
    call_sid: str | None
    from_number: str | None
    to_number: str | None
    language: str
    started_us: int
    ended_us: int
    ended_by: str
    transfer_number: str | None
    transcript: list[dict[str, Any]]
    variables: dict[str, Any]  #: secret ones masked
    secrets: dict[str, Any]  #: the secret variables' values (see voicefn.store.secrets)
    executions: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    extraction: dict[str, Any] | None
    summary: str | None
    outcome: str | None
    created_us: int
    updated_us: int


@dataclass(frozen=True, slots=True)
class CallFilter:
    agent_id: str | None = None
    outcome: str | None = None
    since_us: int | None = None
    until_us: int | None = None


class SqlCalls:
    def __init__(self, session: AsyncSession, box: SecretBox, backend: str) -> None:
        self._s = session
        self._box = box
        self._backend = backend

    def _record(self, row: CallRow) -> CallRecord:
        secrets = self._box.decrypt(row.sealed) if row.sealed else {}
        return CallRecord(
            row.id,
            row.agent_id,
            row.external_id,
            row.execution_id,
            row.call_sid,
            row.from_number,
            row.to_number,
            row.language,
            row.started_us,
            row.ended_us,
            row.ended_by,
            row.transfer_number,
            list(row.transcript or []),
            dict(row.variables or {}),
            secrets if isinstance(secrets, dict) else {},
            list(row.executions or []),
            list(row.functions or []),
            row.extraction,
            row.summary,
            row.outcome,
            row.created_us,
            row.updated_us,
        )

    async def add(self, ws: Workspace, call: NewCall) -> tuple[CallRecord, bool]:
        """Store a finished call; ``(record, True)``. A call this agent already reported (same
        external id) is not stored again: ``(the first record, False)``."""
        at = now_us()
        values: dict[str, Any] = {
            "workspace_id": ws.id,
            "id": new_id("call"),
            "agent_id": call.agent_id,
            "external_id": call.external_id,
            "call_sid": call.call_sid,
            "execution_id": call.execution_id,
            "from_number": call.from_number,
            "to_number": call.to_number,
            "language": call.language,
            "started_us": call.started_us,
            "ended_us": call.ended_us,
            "ended_by": call.ended_by,
            "transfer_number": call.transfer_number,
            "transcript": call.transcript,
            "variables": call.variables,
            "sealed": self._box.encrypt(call.secrets) if call.secrets else None,
            "executions": call.executions,
            "functions": call.functions,
            "extraction": None,
            "summary": None,
            "outcome": None,
            "created_us": at,
            "updated_us": at,
        }
        insert = pg_insert if self._backend == "postgresql" else sqlite_insert
        table: Table = CallRow.__table__  # type: ignore[assignment]
        stmt = (
            insert(table)
            .values(values)
            .on_conflict_do_nothing(index_elements=["workspace_id", "agent_id", "external_id"])
        )
        result = await self._s.execute(stmt)
        created = bool(getattr(result, "rowcount", 0))
        row = await self._s.scalar(
            select(CallRow).where(
                CallRow.workspace_id == ws.id,
                CallRow.agent_id == call.agent_id,
                CallRow.external_id == call.external_id,
            )
        )
        assert row is not None
        return self._record(row), created

    async def get(self, ws: Workspace, call_id: str) -> CallRecord | None:
        row = await self._s.get(CallRow, (ws.id, call_id))
        return self._record(row) if row is not None else None

    async def page(
        self, ws: Workspace, flt: CallFilter, *, limit: int, cursor: str | None
    ) -> Page[CallRecord]:
        """Newest first."""
        query = select(CallRow).where(CallRow.workspace_id == ws.id)
        if flt.agent_id is not None:
            query = query.where(CallRow.agent_id == flt.agent_id)
        if flt.outcome is not None:
            query = query.where(CallRow.outcome == flt.outcome)
        if flt.since_us is not None:
            query = query.where(CallRow.started_us >= flt.since_us)
        if flt.until_us is not None:
            query = query.where(CallRow.started_us < flt.until_us)
        if cursor is not None:
            started, last_id = decode_cursor(cursor, int, str)
            query = query.where(tuple_(CallRow.started_us, CallRow.id) < (started, last_id))
        query = query.order_by(CallRow.started_us.desc(), CallRow.id.desc())
        rows = list(await self._s.scalars(query.limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].started_us, rows[-1].id) if more else None
        return Page([self._record(r) for r in rows], next_cursor)

    async def set_extraction(
        self,
        ws: Workspace,
        call_id: str,
        extraction: dict[str, Any],
        *,
        summary: str | None,
        outcome: str | None,
    ) -> bool:
        """Keep what the post-call extraction found (a re-run replaces it)."""
        result = await self._s.execute(
            update(CallRow)
            .where(CallRow.workspace_id == ws.id, CallRow.id == call_id)
            .values(extraction=extraction, summary=summary, outcome=outcome, updated_us=now_us())
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def executions_of(
        self, ws: Workspace, agent_id: str, call_sid: str, *, limit: int = 500
    ) -> Sequence[ExecutionRecord]:
        """The executions the platform recorded for this call (the execute endpoint, with the
        call's ``call_sid``), oldest first."""
        rows = await self._s.scalars(
            select(ExecutionRow)
            .where(
                ExecutionRow.workspace_id == ws.id,
                ExecutionRow.agent_id == agent_id,
                ExecutionRow.call_sid == call_sid,
            )
            .order_by(ExecutionRow.started_us, ExecutionRow.id)
            .limit(limit)
        )
        return [execution_record(r) for r in rows]
