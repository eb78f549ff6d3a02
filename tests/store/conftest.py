from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from platform_db import BACKENDS, database

from voicefn.store import SecretBox, SqlStore, Workspace, database_url, open_store


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield database_url(tmp_path, url)


@pytest.fixture
async def store(db_url: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(db_url, SecretBox.load(tmp_path / "data"))
    yield opened
    await opened.close()


@pytest.fixture
async def two_workspaces(store: SqlStore) -> tuple[Workspace, Workspace]:
    async with store.write() as repos:
        a = await repos.workspaces.create("tenant-a")
        b = await repos.workspaces.create("tenant-b")
    return a, b
