"""The change feed: one row per write, read by every process to drop what it cached."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import ChangeRow
from ..records import ChangeEvent, Workspace, now_us


class ChangeLog:
    """Appends a transaction's changes to the feed and remembers them, so the store can tell
    this process's listeners once the transaction has committed."""

    def __init__(self, session: AsyncSession, origin: str) -> None:
        self._s = session
        self.origin = origin
        self.emitted: list[ChangeEvent] = []

    async def emit(self, ws: Workspace, kind: str, ref: str) -> None:
        await self._s.execute(
            insert(ChangeRow).values(
                workspace_id=ws.id, kind=kind, ref=ref, origin=self.origin, created_us=now_us()
            )
        )
        self.emitted.append(ChangeEvent(0, ws.id, kind, ref, self.origin))


class SqlChanges:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def since(self, seq: int, limit: int = 1000) -> list[ChangeEvent]:
        rows = await self._s.execute(
            select(
                ChangeRow.seq,
                ChangeRow.workspace_id,
                ChangeRow.kind,
                ChangeRow.ref,
                ChangeRow.origin,
            )
            .where(ChangeRow.seq > seq)
            .order_by(ChangeRow.seq)
            .limit(limit)
        )
        return [ChangeEvent(r.seq, r.workspace_id, r.kind, r.ref, r.origin) for r in rows]

    async def latest(self) -> int:
        value = await self._s.scalar(select(func.max(ChangeRow.seq)))
        return int(value or 0)

    async def prune(self, before_us: int) -> int:
        result = await self._s.execute(delete(ChangeRow).where(ChangeRow.created_us < before_us))
        return int(getattr(result, "rowcount", 0) or 0)
