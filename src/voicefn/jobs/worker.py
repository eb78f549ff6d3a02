"""Workers: claim due jobs, deliver them, record each attempt.

A claim is one statement: the due rows (``due_us <= now``, oldest first) become ``running``,
owned by this worker, their attempt counted, ``due_us`` moved to the end of the lease; on
PostgreSQL the rows are picked with ``FOR UPDATE SKIP LOCKED`` (workers in other processes take
other rows), on SQLite the claim is a write transaction (``BEGIN IMMEDIATE``: one writer at a
time). A worker renews the leases of what it holds; a job whose worker died is due again when
its lease ends, and the next claim takes it: at least once.

Outcomes are written in batches (one transaction for whatever finished meanwhile), each guarded
by the claim (owner and attempt number), so a worker whose lease ran out cannot overwrite the
outcome of the worker that took the job over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, bindparam, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..store.models_jobs import JobAttemptRow, JobRow
from ..store.records import now_us
from ..store.sql.jobs import CHANNEL, SqlSigningKeys, Waker, insert_jobs
from .codec import decode
from .delivery import Attempt, Delivery, deliver
from .retry import RetryPolicy

if TYPE_CHECKING:
    from ..executor import Executor
    from ..store.sql import SqlStore

log = logging.getLogger("voicefn.jobs")

_JOBS: Table = JobRow.__table__  # type: ignore[assignment]
_ATTEMPTS: Table = JobAttemptRow.__table__  # type: ignore[assignment]
#: How long the secrets that sign a workspace's (or agent's) webhooks are cached.
SIGNING_CACHE_S = 10.0


@dataclass(frozen=True, slots=True)
class Claimed:
    workspace_id: str
    id: str
    call_id: str | None
    kind: str
    name: str
    attempt: int
    max_attempts: int | None
    redelivered_at_attempt: int
    payload: dict[str, Any]
    sealed: str | None


@dataclass(slots=True)
class Finished:
    job: Claimed
    attempt: Attempt
    started_us: int
    finished_us: int


class SigningCache:
    """The secrets that sign a workspace's (or an agent's) webhooks, read at most every
    :data:`SIGNING_CACHE_S`; jobs that need them at once share one lookup. The workspace's first
    key is made when it has none."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self._cache: dict[tuple[str, str | None], tuple[float, list[str]]] = {}
        self._loading: dict[tuple[str, str | None], asyncio.Future[list[str]]] = {}

    async def secrets(self, workspace_id: str, agent_id: str | None) -> list[str]:
        key = (workspace_id, agent_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        loading = self._loading.get(key)
        if loading is None:
            loading = asyncio.ensure_future(self._load(key))
            self._loading[key] = loading
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        return await asyncio.shield(loading)

    def forget(self, workspace_id: str) -> None:
        """Drop a workspace's cached secrets (its keys changed in this process; other processes
        pick the change up within :data:`SIGNING_CACHE_S`)."""
        for key in [k for k in self._cache if k[0] == workspace_id]:
            del self._cache[key]

    async def _load(self, key: tuple[str, str | None]) -> list[str]:
        workspace_id, agent_id = key
        async with self.store.db.read() as session:
            found = await SqlSigningKeys(session, self.store.box).secrets_for(
                workspace_id, agent_id
            )
        if not found:
            found = await ensure_signing_key(self.store, workspace_id)
        self._cache[key] = (time.monotonic() + SIGNING_CACHE_S, found)
        return found


class JobWorker:
    """Delivers the jobs of every workspace in ``store``'s database.

    ``executor_for(workspace_id)`` gives the Executor a workspace's jobs run through (its egress
    policy); ``services`` are handed to tasks. At most ``concurrency`` deliveries at once; a
    claim holds a job for ``lease_s`` (renewed while it runs); with nothing due, the worker waits
    for a commit of new jobs (this process; PostgreSQL ``NOTIFY`` from others) or ``poll_s``.
    """

    def __init__(
        self,
        store: SqlStore,
        *,
        executor_for: Callable[[str], Awaitable[Executor]],
        policy: RetryPolicy | None = None,
        concurrency: int = 64,
        lease_s: float = 30.0,
        poll_s: float = 0.2,
        batch: int = 64,
        services: Mapping[str, Any] | None = None,
        signing: SigningCache | None = None,
    ) -> None:
        self.store = store
        self.executor_for = executor_for
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.batch = batch
        self.services = dict(services or {})
        #: names this worker's claims (a claim token)
        self.owner = uuid.uuid4().hex
        self.delivered = 0
        self.failed = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._finished: list[Finished] = []
        self._finished_event = asyncio.Event()
        self._slot = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waker: Waker | None = None
        self._listener: Any = None
        self.signing = signing or SigningCache(store)
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._waker = Waker()
        if not self.store.db.is_sqlite:
            await self._listen()
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="voicefn-jobs-claim"),
            asyncio.create_task(self._flush_loop(), name="voicefn-jobs-flush"),
            asyncio.create_task(self._renew_loop(), name="voicefn-jobs-renew"),
        ]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop claiming; wait up to ``grace_s`` for deliveries in flight, record them, and hand
        back what is still held (due at once, for any other worker)."""
        self._stopping = True
        if self._waker is not None:
            self._waker.event.set()
        claim = self._tasks[0] if self._tasks else None
        if claim is not None:
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await claim
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace_s)
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        try:
            await self._flush()
            await self._release()
        except Exception as exc:  # the database is gone: leases end on their own
            log.warning("jobs: could not hand back claimed jobs: %s", exc)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close()
            self._listener = None

    async def _listen(self) -> None:
        """PostgreSQL: LISTEN on the jobs channel, so other processes' commits wake us."""
        try:
            import asyncpg  # type: ignore[import-untyped]

            url = self.store.db.url.set(drivername="postgresql")
            conn = await asyncpg.connect(url.render_as_string(hide_password=False))
            waker = self._waker

            def notified(*_: Any) -> None:
                if waker is not None:
                    waker.event.set()

            await conn.add_listener(CHANNEL, notified)
            self._listener = conn
        except Exception as exc:
            log.warning(
                "jobs: LISTEN %s failed (%s); polling every %.2f s", CHANNEL, exc, self.poll_s
            )

    # ------------------------------------------------------------------ claiming

    async def _claim_loop(self) -> None:
        assert self._waker is not None
        # Claim in batches: wait for a quarter of the slots to be free (one statement for many
        # jobs), unless nothing is in flight.
        threshold = min(self.batch, max(1, self.concurrency // 4))
        while not self._stopping:
            free = self.concurrency - len(self._inflight)
            if free < threshold and self._inflight:
                self._slot.clear()
                await self._slot.wait()
                continue
            want = min(free, self.batch)
            self._waker.event.clear()
            try:
                claimed = await self._claim(want)
            except Exception as exc:
                log.warning("jobs: claiming failed: %s", exc)
                claimed = []
                await asyncio.sleep(1.0)
            for job in claimed:
                task = asyncio.create_task(self._run(job))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if len(claimed) < want:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_s):
                        await self._waker.event.wait()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot.set()

    async def _claim(self, limit: int) -> list[Claimed]:
        at = now_us()
        lease_end = at + int(self.lease_s * 1_000_000)
        due = (
            select(JobRow.workspace_id, JobRow.id)
            .where(JobRow.due_us <= at)
            .order_by(JobRow.due_us)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(JobRow)
            .where(tuple_(JobRow.workspace_id, JobRow.id).in_(due.scalar_subquery()))
            .values(
                state="running",
                owner=self.owner,
                due_us=lease_end,
                attempts=JobRow.attempts + 1,
                first_attempt_us=_coalesce(JobRow.first_attempt_us, at),
                updated_us=at,
            )
            .returning(
                JobRow.workspace_id,
                JobRow.id,
                JobRow.call_id,
                JobRow.kind,
                JobRow.name,
                JobRow.attempts,
                JobRow.max_attempts,
                JobRow.redelivered_at_attempt,
                JobRow.payload,
                JobRow.sealed,
            )
            .execution_options(synchronize_session=False)
        )
        if self.store.db.is_sqlite:
            # A read first (beside writers, WAL): an idle worker never takes the write lock.
            async with self.store.db.read() as session:
                probe = select(JobRow.due_us).where(JobRow.due_us <= at).limit(1)
                if (await session.execute(probe)).first() is None:
                    return []
        async with self.store.db.write() as session:
            rows = (await session.execute(stmt)).all()
        return [Claimed(*tuple(row)) for row in rows]

    # ------------------------------------------------------------------ delivering

    async def _run(self, job: Claimed) -> None:
        started = now_us()
        try:
            attempt = await self._attempt(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug of ours: the job is retried, the worker lives on
            log.exception("jobs: job %s failed inside the worker", job.id)
            attempt = Attempt("retry", error=f"internal error: {type(exc).__name__}")
        if attempt.outcome == "ok":
            self.delivered += 1
        else:
            self.failed += 1
        self._finished.append(Finished(job, attempt, started, now_us()))
        self._finished_event.set()

    async def _attempt(self, job: Claimed) -> Attempt:
        limit = job.max_attempts or self.policy.max_attempts
        if job.attempt - job.redelivered_at_attempt > limit:
            # Every earlier claim ended without an outcome (its worker died each time).
            return Attempt("final", error=f"no outcome after {limit} attempts")
        secret = self.store.box.decrypt(job.sealed) if job.sealed else {}
        decoded = decode(job.kind, job.name, job.payload, secret)
        signing: list[str] = []
        from .model import FunctionJob, HttpJob

        if isinstance(decoded, HttpJob) and decoded.sign:
            signing = await self._signing_secrets(job.workspace_id, decoded.agent_id)
        elif isinstance(decoded, FunctionJob) and decoded.sign:
            signing = await self._signing_secrets(job.workspace_id, decoded.context.agent_id)
        executor = await self.executor_for(job.workspace_id)
        d = Delivery(
            job.id,
            job.workspace_id,
            job.call_id,
            job.attempt,
            executor,
            signing,
            self.services,
        )
        return await deliver(decoded, d)

    async def _signing_secrets(self, workspace_id: str, agent_id: str | None) -> list[str]:
        return await self.signing.secrets(workspace_id, agent_id)

    def forget_signing(self, workspace_id: str) -> None:
        self.signing.forget(workspace_id)

    # ------------------------------------------------------------------ recording

    async def _flush_loop(self) -> None:
        while True:
            await self._finished_event.wait()
            if len(self._finished) < self.batch:
                await asyncio.sleep(0.005)  # let a few more finish: one transaction for them
            self._finished_event.clear()
            try:
                await self._flush()
            except Exception as exc:
                log.warning("jobs: recording outcomes failed (retrying): %s", exc)
                await asyncio.sleep(1.0)
                self._finished_event.set()

    async def _flush(self) -> None:
        batch, self._finished = self._finished, []
        if not batch:
            return
        try:
            await self._write(batch)
        except BaseException:
            self._finished[:0] = batch  # written next time (or the leases end)
            raise

    async def _write(self, batch: list[Finished]) -> None:
        at = now_us()
        plain: list[dict[str, Any]] = []
        attempts: list[dict[str, Any]] = []
        chained: list[tuple[dict[str, Any], Finished]] = []
        for f in batch:
            job, a = f.job, f.attempt
            limit = job.max_attempts or self.policy.max_attempts
            state = "succeeded" if a.outcome == "ok" else "dead"
            due: int | None = None
            if a.outcome == "retry" and job.attempt - job.redelivered_at_attempt < limit:
                state = "queued"
                due = at + int(self.policy.delay_s(job.attempt, a.retry_after_s) * 1_000_000)
            values = {
                "w": job.workspace_id,
                "i": job.id,
                "o": self.owner,
                "n": job.attempt,
                "state": state,
                "due_us": due,
                "last_status": a.status,
                "last_error": a.error,
                "result": a.result,
                "finished_us": None if state == "queued" else at,
                "updated_us": at,
            }
            if a.follow_up:
                chained.append((values, f))
            else:
                plain.append(values)
            attempts.append(
                {
                    "workspace_id": job.workspace_id,
                    "job_id": job.id,
                    "n": job.attempt,
                    "started_us": f.started_us,
                    "finished_us": f.finished_us,
                    "outcome": a.outcome,
                    "status": a.status,
                    "error": a.error,
                    "retry_after_s": a.retry_after_s,
                }
            )
        guard = and_(
            JobRow.workspace_id == bindparam("w"),
            JobRow.id == bindparam("i"),
            JobRow.owner == bindparam("o"),
            JobRow.attempts == bindparam("n"),
            JobRow.state == "running",
        )
        stmt = (
            update(_JOBS)
            .where(guard)
            .values(
                state=bindparam("state"),
                due_us=bindparam("due_us"),
                owner=None,
                last_status=bindparam("last_status"),
                last_error=bindparam("last_error"),
                result=bindparam("result"),
                finished_us=bindparam("finished_us"),
                updated_us=bindparam("updated_us"),
            )
        )
        backend = self.store.backend
        insert = pg_insert if backend == "postgresql" else sqlite_insert
        async with self.store.db.write() as session:
            conn = await session.connection()
            if plain:
                await conn.execute(stmt, plain)
            for values, f in chained:
                done = await conn.execute(stmt, values)
                if getattr(done, "rowcount", 1) == 1:  # still ours: its follow-ups go with it
                    await insert_jobs(
                        session,
                        backend,
                        self.store.box,
                        f.job.workspace_id,
                        f.job.call_id,
                        _keyed(f),
                    )
            await conn.execute(insert(_ATTEMPTS).on_conflict_do_nothing(), attempts)

    # ------------------------------------------------------------------ leases

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if not self._inflight:
                continue
            try:
                await self._renew()
            except Exception as exc:
                log.warning("jobs: renewing leases failed: %s", exc)

    async def _renew(self) -> None:
        at = now_us()
        async with self.store.db.write() as session:
            await session.execute(
                update(JobRow)
                .where(JobRow.owner == self.owner, JobRow.state == "running")
                .values(due_us=at + int(self.lease_s * 1_000_000), updated_us=at)
                .execution_options(synchronize_session=False)
            )

    async def _release(self) -> None:
        at = now_us()
        async with self.store.db.write() as session:
            await session.execute(
                update(JobRow)
                .where(JobRow.owner == self.owner, JobRow.state == "running")
                .values(state="queued", owner=None, due_us=at, updated_us=at)
                .execution_options(synchronize_session=False)
            )


def _keyed(f: Finished) -> list[Any]:
    """A task's follow-ups, each with a key (its own, else derived from the task's job): a task
    that runs twice enqueues them once."""
    from dataclasses import replace

    out = []
    for i, job in enumerate(f.attempt.follow_up):
        out.append(job if job.key else replace(job, key=f"{f.job.id}/{i}"))
    return out


def _coalesce(column: Any, value: int) -> Any:
    from sqlalchemy import func

    return func.coalesce(column, value)


async def ensure_signing_key(store: SqlStore, workspace_id: str) -> list[str]:
    """The workspace's signing secrets, making its first key when it has none."""
    async with store.write() as repos:
        return await repos.signing_keys.ensure(workspace_id)
