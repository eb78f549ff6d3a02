"""Migrations are code: ``upgrade head`` on an empty database gives exactly the models' schema."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from voicefn.store.database import Database
from voicefn.store.migrate import current, head, upgrade
from voicefn.store.models import Base


async def _diff(db: Database) -> list[object]:
    async with db.connect() as conn:
        return await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata
            )
        )


async def _tables(db: Database) -> set[str]:
    async with db.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_head_on_an_empty_database_matches_the_models(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert await _tables(db) == set()
        assert await current(db) is None
        await upgrade(db)
        assert await current(db) == head()
        assert {t.name for t in Base.metadata.sorted_tables} <= await _tables(db)
        assert await _diff(db) == []
    finally:
        await db.dispose()


async def test_upgrade_twice_changes_nothing(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        before = await _tables(db)
        await upgrade(db)
        assert await _tables(db) == before
        assert await current(db) == head()
    finally:
        await db.dispose()


async def test_servers_starting_together_migrate_once(db_url: str) -> None:
    """Several processes starting at once take turns (advisory lock / lock file)."""
    dbs = [Database(db_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(db) for db in dbs))
        assert await current(dbs[0]) == head()
        assert await _diff(dbs[0]) == []
    finally:
        for db in dbs:
            await db.dispose()


def test_the_migrations_ship_inside_the_package() -> None:
    from voicefn.store import migrate

    versions = Path(migrate.MIGRATIONS) / "versions"
    assert Path(migrate.__file__).parent in Path(migrate.MIGRATIONS).parents
    assert any(p.suffix == ".py" and p.name[0].isdigit() for p in versions.iterdir())
