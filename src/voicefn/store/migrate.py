"""Alembic migrations, shipped in the package and applied on start.

``upgrade(db)`` brings any database (empty or older) to the newest schema. Several processes
starting at once take turns: a PostgreSQL advisory lock, or a lock file beside the SQLite file.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from .database import Database

MIGRATIONS = Path(__file__).with_name("migrations")
#: Any constant: the advisory lock voicefn's migrations take on PostgreSQL.
_PG_LOCK = int.from_bytes(b"voicefn", "big")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def _upgrade(sync_conn: Any, target: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, target)


def _current(sync_conn: Any) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


def _lock(path: Path) -> int:
    """Open ``path`` and wait for an exclusive lock on it (closing the descriptor releases it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


async def upgrade(db: Database, target: str = "head") -> None:
    """Apply every migration up to ``target`` (idempotent)."""
    if db.is_sqlite:
        path = Path(db.url.database or "voicefn.db")
        lock = path.with_name(path.name + ".migrate-lock")
        fd = await asyncio.to_thread(_lock, lock)  # other processes wait in a thread
        try:
            async with db.connect() as conn:
                await conn.run_sync(_upgrade, target)
                await conn.commit()
        finally:
            os.close(fd)
        return
    async with db.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
        try:
            await conn.commit()
            await conn.run_sync(_upgrade, target)
            await conn.commit()
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
            await conn.commit()


async def current(db: Database) -> str | None:
    async with db.connect() as conn:
        return await conn.run_sync(_current)
