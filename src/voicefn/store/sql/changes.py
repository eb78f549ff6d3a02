"""The change feed: one row per write, read by every process to drop what it cached."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import ChangeRow
from ..records import ChangeEvent, Workspace, now_us


async def emit(session: AsyncSession, ws: Workspace, kind: str, ref: str) -> None:
    await session.execute(
        insert(ChangeRow).values(workspace_id=ws.id, kind=kind, ref=ref, created_us=now_us())
    )


class SqlChanges:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def since(self, seq: int, limit: int = 1000) -> list[ChangeEvent]:
        rows = await self._s.execute(
            select(ChangeRow.seq, ChangeRow.workspace_id, ChangeRow.kind, ChangeRow.ref)
            .where(ChangeRow.seq > seq)
            .order_by(ChangeRow.seq)
            .limit(limit)
        )
        return [ChangeEvent(r.seq, r.workspace_id, r.kind, r.ref) for r in rows]

    async def latest(self) -> int:
        value = await self._s.scalar(select(func.max(ChangeRow.seq)))
        return int(value or 0)

    async def prune(self, before_us: int) -> int:
        result = await self._s.execute(delete(ChangeRow).where(ChangeRow.created_us < before_us))
        return int(getattr(result, "rowcount", 0) or 0)
