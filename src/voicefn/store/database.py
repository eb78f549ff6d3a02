"""The database: SQLite (WAL) in the data directory by default, PostgreSQL by URL.

``read()`` and ``write()`` hand out sessions. On SQLite, writes in this process queue on one lock
and start with ``BEGIN IMMEDIATE`` (so a write never fails half-way because another process wrote
first; ``busy_timeout`` waits for other processes); reads run beside them (WAL). On PostgreSQL
both come from one pool and row locks order concurrent writers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from . import jsontext

ENV_URL = "VOICEFN_DATABASE_URL"
DB_FILE = "voicefn.db"


class DatabaseConfigError(ValueError):
    """The database URL names something voicefn cannot use; the message says what to write."""


def database_url(data_dir: Path, url: str | None = None) -> str:
    """The SQLAlchemy URL to use: ``url`` (or ``$VOICEFN_DATABASE_URL``) normalised to an async
    driver, else SQLite in ``data_dir``."""
    raw = url or os.environ.get(ENV_URL) or ""
    if not raw.strip():
        return f"sqlite+aiosqlite:///{(data_dir / DB_FILE).resolve()}"
    raw = raw.strip()
    for plain, driver in (
        ("postgres://", "postgresql+asyncpg://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if raw.startswith(plain):
            raw = driver + raw[len(plain) :]
    parsed = make_url(raw)
    if parsed.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
        raise DatabaseConfigError(
            f"unsupported database {parsed.drivername!r}: use postgresql://user@host/db "
            "(installs: pip install 'voicefn[postgres]') or sqlite:///path/to/voicefn.db"
        )
    return raw


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a commit survives a crash
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _manual_begin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver issues no BEGIN of its own


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """Engines and sessions for one database URL."""

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 20) -> None:
        self.url: URL = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if self.is_sqlite:
            path = self.url.database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._reader = create_async_engine(self.url, json_serializer=jsontext.dumps)
            self._writer = create_async_engine(self.url, json_serializer=jsontext.dumps)
            for engine in (self._reader, self._writer):
                event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self._writer.sync_engine, "connect", _manual_begin)
            event.listen(self._writer.sync_engine, "begin", _begin_immediate)
        else:
            self._reader = create_async_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_pre_ping=True,
                json_serializer=jsontext.dumps,
            )
            self._writer = self._reader
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._read_sessions = async_sessionmaker(self._reader, expire_on_commit=False)
        self._write_sessions = async_sessionmaker(self._writer, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    def describe(self) -> str:
        """The URL without its password, for messages."""
        return self.url.render_as_string(hide_password=True)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction, committed when the block ends without an exception."""
        if self._write_lock is None:
            async with self._write_sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._write_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A raw connection for migrations (on the writing engine)."""
        async with self._writer.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self._reader.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()
