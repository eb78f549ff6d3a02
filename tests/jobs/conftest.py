from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "store"))
sys.path.insert(0, str(Path(__file__).parent))

from platform_db import BACKENDS, database
from receivers import Receiver, running_receiver

from voicefn.executor import Executor
from voicefn.jobs import JobRecord, JobWorker, RetryPolicy
from voicefn.store import SecretBox, SqlStore, Workspace, database_url, open_store

#: How long a test waits for work a worker is doing (a busy 2-core machine); not a measurement.
PATIENCE_S = 60.0


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


#: Retries come quickly in tests (the backoff itself is tested on RetryPolicy).
FAST = RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05)


@pytest.fixture
async def worker(store: SqlStore, executor: Executor) -> AsyncIterator[JobWorker]:
    async def executor_for(_: str) -> Executor:
        return executor

    w = JobWorker(store, executor_for=executor_for, policy=FAST, poll_s=0.05)
    await w.start()
    yield w
    await w.stop()


async def settled(
    store: SqlStore, ws: Workspace, ids: Sequence[str], states: tuple[str, ...] = ("succeeded",)
) -> list[JobRecord]:
    """The jobs once every one is in one of ``states`` (with their attempts); fails after
    :data:`PATIENCE_S` with where they are."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        async with store.read() as repos:
            jobs = [await repos.jobs.get(ws, i) for i in ids]
        found = [j for j in jobs if j is not None]
        if len(found) == len(ids) and all(j.state in states for j in found):
            return found
        if time.monotonic() > deadline:
            where = [(j.id, j.state, j.attempts, j.last_error) for j in found]
            raise AssertionError(f"jobs did not reach {states}: {where}")
        await asyncio.sleep(0.02)
