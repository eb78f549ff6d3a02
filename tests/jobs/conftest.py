from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "store"))
sys.path.insert(0, str(Path(__file__).parent))

from jobs_support import FAST
from platform_db import BACKENDS, database
from receivers import Receiver, running_receiver

from voicefn.executor import Executor
from voicefn.jobs import JobWorker
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
async def ws(store: SqlStore) -> Workspace:
    async with store.write() as repos:
        return await repos.workspaces.create("tenant-a")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as r:
        yield r


@pytest.fixture
async def executor() -> AsyncIterator[Executor]:
    ex = Executor(allow_private_network=True)
    yield ex
    await ex.aclose()


@pytest.fixture
async def worker(store: SqlStore, executor: Executor) -> AsyncIterator[JobWorker]:
    async def executor_for(_: str) -> Executor:
        return executor

    w = JobWorker(store, executor_for=executor_for, policy=FAST, poll_s=0.05)
    await w.start()
    yield w
    await w.stop()
