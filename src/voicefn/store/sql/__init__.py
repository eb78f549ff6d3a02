"""The SQL store (SQLAlchemy 2, async): SQLite or PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..crypto import SecretBox
from ..database import Database
from ..migrate import upgrade
from ..models import MetaRow
from ..protocol import Repos, Store
from ..records import ChangeEvent
from .agents import SqlAgents
from .calls import SqlCalls
from .changes import ChangeLog, SqlChanges
from .executions import SqlExecutions
from .functions import SqlFunctions
from .jobs import SqlJobs, SqlSigningKeys
from .tenants import SqlKeys, SqlSettings, SqlWorkspaces

_KEY_CHECK = "secret_key_check"


class SqlRepos:
    """Every repository, bound to one session (one transaction)."""

    def __init__(self, session: AsyncSession, box: SecretBox, backend: str, origin: str) -> None:
        self.log = ChangeLog(session, origin)
        self.workspaces = SqlWorkspaces(session)
        self.keys = SqlKeys(session, self.log)
        self.settings = SqlSettings(session, self.log)
        self.agents = SqlAgents(session, box, self.log)
        self.functions = SqlFunctions(session, box, self.log)
        self.executions = SqlExecutions(session, backend)
        self.changes = SqlChanges(session)
        self.jobs = SqlJobs(session, box, backend)
        self.signing_keys = SqlSigningKeys(session, box)
        self.calls = SqlCalls(session, box, backend)


class SqlStore:
    def __init__(self, db: Database, box: SecretBox) -> None:
        self.db = db
        self.box = box
        self.backend = db.backend
        #: names this store's writes in the change feed
        self.origin = uuid.uuid4().hex
        self._listeners: list[Callable[[ChangeEvent], None]] = []

    def subscribe(self, listener: Callable[[ChangeEvent], None]) -> None:
        """Call ``listener`` with every change this store commits, right after the commit."""
        self._listeners.append(listener)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlRepos]:
        async with self.db.read() as session:
            yield SqlRepos(session, self.box, self.backend, self.origin)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SqlRepos]:
        async with self.db.write() as session:
            repos = SqlRepos(session, self.box, self.backend, self.origin)
            yield repos
        for event in repos.log.emitted:  # committed: tell this process at once
            for listener in self._listeners:
                listener(event)

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.dispose()

    async def check_key(self) -> None:
        """Store the key's check value on first use; refuse a different key afterwards."""
        async with self.db.write() as session:
            insert = pg_insert if self.backend == "postgresql" else sqlite_insert
            await session.execute(
                insert(MetaRow)
                .values(key=_KEY_CHECK, value=self.box.check_value())
                .on_conflict_do_nothing(index_elements=["key"])
            )
            stored = await session.scalar(select(MetaRow.value).where(MetaRow.key == _KEY_CHECK))
        assert stored is not None
        self.box.verify(stored)


async def open_store(url: str, box: SecretBox, *, migrate: bool = True) -> SqlStore:
    """Connect, apply the migrations (unless told not to) and check the secret key."""
    db = Database(url)
    try:
        if migrate:
            await upgrade(db)
        store = SqlStore(db, box)
        await store.check_key()
    except BaseException:
        await db.dispose()
        raise
    return store


__all__ = ["SqlRepos", "SqlStore", "open_store"]


def _conforms(store: SqlStore) -> Store:
    return store  # mypy checks here that SqlStore is a Store


def _repos_conform(r: SqlRepos) -> Repos:
    return r
