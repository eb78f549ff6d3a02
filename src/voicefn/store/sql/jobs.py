"""Jobs and webhook signing keys, per workspace: enqueue in the caller's transaction, list,
show, redeliver; signing keys made, rotated and revoked.

The workers' side (claiming due jobs across workspaces, recording attempts) is
:mod:`voicefn.jobs.worker`.
"""

from __future__ import annotations

import asyncio
import secrets as _secrets
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ...jobs.codec import encode
from ...jobs.model import STATES, AttemptRecord, Job, JobRecord
from ..crypto import SecretBox
from ..ids import decode_cursor, encode_cursor, new_id, ordered_id
from ..models_jobs import JobAttemptRow, JobRow, SigningKeyRow
from ..protocol import StoreError
from ..records import Page, Workspace, now_us

#: PostgreSQL's channel: every enqueue notifies it when its transaction commits.
CHANNEL = "voicefn_jobs"

_wakers: weakref.WeakSet[Waker] = weakref.WeakSet()


class Waker:
    """Set (from any thread) when this process commits new jobs; workers wait on it."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        _wakers.add(self)

    def set(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.event.set)
        except RuntimeError:  # its loop is closed
            _wakers.discard(self)


def _wake_all(_session: Any) -> None:
    for waker in list(_wakers):
        waker.set()


def record(row: JobRow, attempts: Sequence[JobAttemptRow] = ()) -> JobRecord:
    return JobRecord(
        id=row.id,
        workspace_id=row.workspace_id,
        call_id=row.call_id,
        kind=row.kind,  # type: ignore[arg-type]
        name=row.name,
        key=row.key,
        state=row.state,  # type: ignore[arg-type]
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        redelivered_at_attempt=row.redelivered_at_attempt,
        due_us=row.due_us,
        created_us=row.created_us,
        updated_us=row.updated_us,
        first_attempt_us=row.first_attempt_us,
        finished_us=row.finished_us,
        last_status=row.last_status,
        last_error=row.last_error,
        payload=row.payload,
        result=row.result,
        attempt_log=tuple(
            AttemptRecord(
                a.n,
                a.started_us,
                a.finished_us,
                a.outcome,  # type: ignore[arg-type]
                a.status,
                a.error,
                a.retry_after_s,
            )
            for a in attempts
        ),
    )


def job_values(
    workspace_id: str, call_id: str | None, job: Job, box: SecretBox, at_us: int
) -> dict[str, Any]:
    """The row for a new job."""
    enc = encode(job)
    return {
        "workspace_id": workspace_id,
        "id": ordered_id("job", at_us),
        "call_id": call_id,
        "kind": enc.kind,
        "name": enc.name[:200],
        "key": enc.key,
        "state": "queued",
        "attempts": 0,
        "max_attempts": enc.max_attempts,
        "redelivered_at_attempt": 0,
        "due_us": at_us,
        "owner": None,
        "payload": enc.payload,
        "sealed": box.encrypt(enc.secret) if enc.secret else None,
        "result": None,
        "last_status": None,
        "last_error": None,
        "created_us": at_us,
        "updated_us": at_us,
        "first_attempt_us": None,
        "finished_us": None,
    }


async def insert_jobs(
    session: AsyncSession,
    backend: str,
    box: SecretBox,
    workspace_id: str,
    call_id: str | None,
    jobs: Sequence[Job],
    *,
    delay_s: float = 0.0,
) -> list[str]:
    """Insert ``jobs`` in the session's transaction; returns their ids (a job whose ``key`` the
    workspace already has is skipped: its id is the stored job's). Workers hear of them when the
    transaction commits."""
    if not jobs:
        return []
    at = now_us() + int(delay_s * 1_000_000)
    values = [job_values(workspace_id, call_id, job, box, at) for job in jobs]
    insert = pg_insert if backend == "postgresql" else sqlite_insert
    table: Table = JobRow.__table__  # type: ignore[assignment]
    stmt = insert(table).on_conflict_do_nothing()
    conn = await session.connection()
    await conn.execute(stmt, values)
    keyed = [v["key"] for v in values if v["key"] is not None]
    stored: dict[str, str] = {}
    if keyed:
        rows = await conn.execute(
            select(JobRow.key, JobRow.id).where(
                JobRow.workspace_id == workspace_id, JobRow.key.in_(keyed)
            )
        )
        stored = {k: i for k, i in rows if k is not None}
    if backend == "postgresql":
        await conn.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
    _after_commit(session, _wake_all)
    return [stored.get(v["key"], v["id"]) if v["key"] is not None else v["id"] for v in values]


def _after_commit(session: AsyncSession, fn: Callable[[Any], None]) -> None:
    from sqlalchemy import event

    sync = session.sync_session
    if not event.contains(sync, "after_commit", fn):
        event.listen(sync, "after_commit", fn, once=True)


class NotDead(StoreError):
    """Only a dead-letter job can be redelivered."""


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: str | None = None
    call_id: str | None = None
    kind: str | None = None


class SqlJobs:
    def __init__(self, session: AsyncSession, box: SecretBox, backend: str) -> None:
        self._s = session
        self._box = box
        self._backend = backend

    async def enqueue(
        self,
        ws: Workspace,
        call_id: str | None,
        jobs: Sequence[Job],
        *,
        delay_s: float = 0.0,
    ) -> list[str]:
        """Persist ``jobs`` in this transaction (with the call they belong to); returns ids."""
        return await insert_jobs(
            self._s, self._backend, self._box, ws.id, call_id, jobs, delay_s=delay_s
        )

    async def page(
        self, ws: Workspace, flt: JobFilter, *, limit: int, cursor: str | None
    ) -> Page[JobRecord]:
        """Newest first."""
        query = select(JobRow).where(JobRow.workspace_id == ws.id)
        if flt.state is not None:
            if flt.state not in STATES:
                return Page([], None)
            query = query.where(JobRow.state == flt.state)
        if flt.call_id is not None:
            query = query.where(JobRow.call_id == flt.call_id)
        if flt.kind is not None:
            query = query.where(JobRow.kind == flt.kind)
        if cursor is not None:
            created, last_id = decode_cursor(cursor, int, str)
            query = query.where(tuple_(JobRow.created_us, JobRow.id) < (created, last_id))
        query = query.order_by(JobRow.created_us.desc(), JobRow.id.desc())
        rows = list(await self._s.scalars(query.limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_us, rows[-1].id) if more else None
        return Page([record(r) for r in rows], next_cursor)

    async def get(self, ws: Workspace, job_id: str) -> JobRecord | None:
        """The job with its attempts."""
        row = await self._s.get(JobRow, (ws.id, job_id))
        if row is None:
            return None
        attempts = await self._s.scalars(
            select(JobAttemptRow)
            .where(JobAttemptRow.workspace_id == ws.id, JobAttemptRow.job_id == job_id)
            .order_by(JobAttemptRow.n)
        )
        return record(row, list(attempts))

    async def redeliver(self, ws: Workspace, job_id: str) -> JobRecord | None:
        """Queue a dead-letter job again, due now, with a fresh budget of attempts. None when
        the workspace has no such job; :class:`NotDead` when it is not dead."""
        row = await self._s.get(JobRow, (ws.id, job_id), with_for_update=True)
        if row is None:
            return None
        if row.state != "dead":
            raise NotDead(f"job {job_id} is {row.state}: only dead-letter jobs are redelivered")
        at = now_us()
        await self._s.execute(
            update(JobRow)
            .where(JobRow.workspace_id == ws.id, JobRow.id == job_id, JobRow.state == "dead")
            .values(
                state="queued",
                due_us=at,
                owner=None,
                redelivered_at_attempt=JobRow.attempts,
                finished_us=None,
                updated_us=at,
            )
            .execution_options(synchronize_session=False)
        )
        if self._backend == "postgresql":
            await self._s.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
        _after_commit(self._s, _wake_all)
        await self._s.refresh(row)
        return await self.get(ws, job_id)


# ---------------------------------------------------------------------- signing keys

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class SigningKey:
    id: str
    #: "" for the workspace's key, else the agent whose webhooks it signs
    agent_id: str
    prefix: str
    created_us: int
    expires_us: int | None


@dataclass(frozen=True, slots=True)
class NewSigningKey:
    record: SigningKey
    secret: str


def new_secret() -> str:
    """``whsec_`` and 32 random bytes, base64 (the Standard Webhooks form)."""
    import base64

    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(32)).decode()


def _key(row: SigningKeyRow) -> SigningKey:
    return SigningKey(row.id, row.agent_id, row.prefix, row.created_us, row.expires_us)


class SqlSigningKeys:
    def __init__(self, session: AsyncSession, box: SecretBox) -> None:
        self._s = session
        self._box = box

    async def create(
        self,
        ws: Workspace,
        agent_id: str = "",
        *,
        secret: str | None = None,
        expire_others_in_s: float | None = None,
    ) -> NewSigningKey:
        """A new key for the workspace (``agent_id`` "") or an agent. With
        ``expire_others_in_s``, the scope's other keys stop signing that many seconds from now
        (a rotation: both sign until then)."""
        value = secret or new_secret()
        at = now_us()
        if expire_others_in_s is not None:
            until = at + int(expire_others_in_s * 1_000_000)
            await self._s.execute(
                update(SigningKeyRow)
                .where(
                    SigningKeyRow.workspace_id == ws.id,
                    SigningKeyRow.agent_id == agent_id,
                    (SigningKeyRow.expires_us.is_(None)) | (SigningKeyRow.expires_us > until),
                )
                .values(expires_us=until)
            )
        row = SigningKeyRow(
            workspace_id=ws.id,
            id=new_id("whk"),
            agent_id=agent_id,
            secret=self._box.encrypt(value),
            prefix=value[: len(SECRET_PREFIX) + 6],
            created_us=at,
            expires_us=None,
        )
        self._s.add(row)
        await self._s.flush()
        return NewSigningKey(_key(row), value)

    async def all(self, ws: Workspace, agent_id: str | None = None) -> list[SigningKey]:
        query = select(SigningKeyRow).where(SigningKeyRow.workspace_id == ws.id)
        if agent_id is not None:
            query = query.where(SigningKeyRow.agent_id == agent_id)
        rows = await self._s.scalars(query.order_by(SigningKeyRow.created_us, SigningKeyRow.id))
        return [_key(r) for r in rows]

    async def reveal(self, ws: Workspace, key_id: str) -> NewSigningKey | None:
        row = await self._s.get(SigningKeyRow, (ws.id, key_id))
        if row is None:
            return None
        return NewSigningKey(_key(row), str(self._box.decrypt(row.secret)))

    async def delete(self, ws: Workspace, key_id: str) -> SigningKey | None:
        row = await self._s.get(SigningKeyRow, (ws.id, key_id))
        if row is None:
            return None
        await self._s.delete(row)
        return _key(row)

    async def ensure(self, ws_id: str) -> list[str]:
        """The workspace's signing secrets, making its first key when it has none (an id derived
        from the workspace: processes doing this at once make one key)."""
        found = await self.secrets_for(ws_id, None)
        if found:
            return found
        import hashlib

        value = new_secret()
        conn = await self._s.connection()
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        table: Table = SigningKeyRow.__table__  # type: ignore[assignment]
        await conn.execute(
            insert(table)
            .values(
                workspace_id=ws_id,
                id="whk_" + hashlib.sha256(ws_id.encode()).hexdigest()[:16],
                agent_id="",
                secret=self._box.encrypt(value),
                prefix=value[: len(SECRET_PREFIX) + 6],
                created_us=now_us(),
                expires_us=None,
            )
            .on_conflict_do_nothing()
        )
        return await self.secrets_for(ws_id, None)

    async def secrets_for(self, ws_id: str, agent_id: str | None) -> list[str]:
        """The secrets that sign now for an agent's webhook: the agent's keys when it has any,
        else the workspace's; newest first. Empty when neither has a key."""
        at = now_us()
        scopes = [agent_id, ""] if agent_id else [""]
        rows = list(
            await self._s.scalars(
                select(SigningKeyRow)
                .where(
                    SigningKeyRow.workspace_id == ws_id,
                    SigningKeyRow.agent_id.in_(scopes),
                    (SigningKeyRow.expires_us.is_(None)) | (SigningKeyRow.expires_us > at),
                )
                .order_by(SigningKeyRow.created_us.desc(), SigningKeyRow.id)
            )
        )
        for scope in scopes:
            found = [str(self._box.decrypt(r.secret)) for r in rows if r.agent_id == scope]
            if found:
                return found
        return []
