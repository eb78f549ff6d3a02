"""Databases for the platform tests: SQLite in a temporary directory, and PostgreSQL on
127.0.0.1:5432 (``$VOICEFN_TEST_POSTGRES``; trust auth), a fresh database per test, dropped after.

Outside CI the PostgreSQL half is skipped, with the reason, only when no server answers; with
``CI=true`` it never is (a missing server fails the run).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

ADMIN_URL = os.environ.get("VOICEFN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def _reachable() -> str | None:
    parts = urlsplit(ADMIN_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 3):
            return None
    except OSError as exc:
        return f"no PostgreSQL server at {parts.hostname}:{parts.port or 5432} ({exc})"


def require_postgres() -> None:
    why = _reachable()
    if why is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: CI must run the PostgreSQL half (.ci/run starts the server)")
    pytest.skip(f"{why}; start it (pg_ctlcluster 15 main start) to run the PostgreSQL half")


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def postgres_database() -> Iterator[str]:
    """A new, empty database; yields its URL (as a user would give it) and drops it after."""
    require_postgres()
    name = f"voicefn_t_{secrets.token_hex(6)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(ADMIN_URL)
    try:
        yield parts._replace(path=f"/{name}").geturl()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def database(backend: str, tmp_dir: os.PathLike[str] | str) -> Iterator[str]:
    """The database URL for ``backend``: SQLite in ``tmp_dir``, or a fresh PostgreSQL one."""
    if backend == "sqlite":
        yield f"sqlite:///{os.fspath(tmp_dir)}/voicefn.db"
        return
    with postgres_database() as url:
        yield url
