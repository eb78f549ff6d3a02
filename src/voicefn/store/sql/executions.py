"""Executions: written in batches by the recorder, listed newest first with a cursor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from sqlalchemy import Table, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..ids import decode_cursor, encode_cursor
from ..models import ExecutionRow
from ..records import ExecutionFilter, ExecutionRecord, Page, Workspace

_FIELDS = tuple(f.name for f in fields(ExecutionRecord))


def _record(row: ExecutionRow) -> ExecutionRecord:
    return ExecutionRecord(
        row.id,
        row.agent_id,
        row.function_id,
        row.function_name,
        row.function_version,
        row.source,
        row.ok,
        row.status,
        row.error,
        row.arguments,
        row.request,
        row.result,
        row.timings,
        row.call_sid,
        row.tool_call_id,
        row.started_us,
        row.total_ms,
    )


class SqlExecutions:
    def __init__(self, session: AsyncSession, backend: str) -> None:
        self._s = session
        self._backend = backend

    async def add(self, rows: Sequence[tuple[Workspace, ExecutionRecord]]) -> None:
        if not rows:
            return
        values: list[dict[str, Any]] = [
            {"workspace_id": ws.id, **{f: getattr(record, f) for f in _FIELDS}}
            for ws, record in rows
        ]
        insert = pg_insert if self._backend == "postgresql" else sqlite_insert
        # Core, not the ORM's bulk path: one executemany, nothing tracked in the session.
        table: Table = ExecutionRow.__table__  # type: ignore[assignment]
        stmt = insert(table).on_conflict_do_nothing(index_elements=["workspace_id", "id"])
        conn = await self._s.connection()
        await conn.execute(stmt, values)

    async def page(
        self, ws: Workspace, flt: ExecutionFilter, *, limit: int, cursor: str | None
    ) -> Page[ExecutionRecord]:
        query = select(ExecutionRow).where(ExecutionRow.workspace_id == ws.id)
        if flt.agent_id is not None:
            query = query.where(ExecutionRow.agent_id == flt.agent_id)
        if flt.function_id is not None:
            query = query.where(ExecutionRow.function_id == flt.function_id)
        if flt.function_name is not None:
            query = query.where(ExecutionRow.function_name == flt.function_name)
        if flt.source is not None:
            query = query.where(ExecutionRow.source == flt.source)
        if flt.status == "ok":
            query = query.where(ExecutionRow.ok.is_(True))
        elif flt.status == "error":
            query = query.where(ExecutionRow.ok.is_(False))
        elif flt.status is not None:
            query = query.where(ExecutionRow.error == flt.status)
        if flt.since_us is not None:
            query = query.where(ExecutionRow.started_us >= flt.since_us)
        if flt.until_us is not None:
            query = query.where(ExecutionRow.started_us < flt.until_us)
        if cursor is not None:
            started, last_id = decode_cursor(cursor, int, str)
            query = query.where(
                tuple_(ExecutionRow.started_us, ExecutionRow.id) < (started, last_id)
            )
        query = query.order_by(ExecutionRow.started_us.desc(), ExecutionRow.id.desc())
        rows = list(await self._s.scalars(query.limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].started_us, rows[-1].id) if more else None
        return Page([_record(r) for r in rows], next_cursor)

    async def get(self, ws: Workspace, execution_id: str) -> ExecutionRecord | None:
        row = await self._s.get(ExecutionRow, (ws.id, execution_id))
        return _record(row) if row is not None else None
