"""The recorder and the change feed on a real store: journals of dead processes are stored at
the next start (a line cut by the crash is skipped), executions already stored are not doubled,
and out-of-order commits reach the catalog."""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from voicefn.server.catalog import Catalog, ChangeFeed
from voicefn.server.config import EgressDefaults
from voicefn.server.recorder import Recorder, _encode
from voicefn.store import (
    ExecutionFilter,
    ExecutionRecord,
    SecretBox,
    SqlStore,
    Workspace,
    database_url,
    open_store,
)


@pytest.fixture
async def store(db_url: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(database_url(tmp_path, db_url), SecretBox.load(tmp_path / "k"))
    yield opened
    await opened.close()


async def _workspace(store: SqlStore) -> Workspace:
    async with store.write() as repos:
        return await repos.workspaces.create("w")


def _run(i: int) -> ExecutionRecord:
    started = 1_800_000_000_000_000 + i
    return ExecutionRecord(
        id=f"ex_{i:020d}", agent_id="agent_1", function_id="fn_1",
        function_name="f", function_version=1, source="execute", ok=True, status=200,
        error=None, arguments={"i": i}, request=None, result="{}", timings={},
        call_sid=None, tool_call_id=None, started_us=started, total_ms=1.0,
    )  # fmt: skip


async def _stored(store: SqlStore, ws: Workspace) -> list[int]:
    async with store.read() as repos:
        page = await repos.executions.page(ws, ExecutionFilter(), limit=200, cursor=None)
    return sorted(r.arguments["i"] for r in page.items)


async def test_a_dead_processs_journal_is_stored_at_the_next_start(
    store: SqlStore, tmp_path: Path
) -> None:
    ws = await _workspace(store)
    root = tmp_path / "journal"
    dead = root / "dead-process"
    dead.mkdir(parents=True)
    (dead / ".lock").touch()
    lines = b"".join(_encode(ws, _run(i)) for i in range(5))
    (dead / "a.jsonl").write_bytes(lines + _encode(ws, _run(5))[:40])  # cut by the crash
    alive = root / "live-process"
    alive.mkdir()
    (alive / "b.jsonl").write_bytes(_encode(ws, _run(99)))
    held = os.open(alive / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another process that is still running
    async with store.write() as repos:
        await repos.executions.add([(ws, _run(0))])  # stored before the crash
    try:
        recorder = Recorder(store, root)
        assert await recorder.start() == 5
        assert not dead.exists()
        assert (alive / "b.jsonl").exists()
        assert await _stored(store, ws) == [0, 1, 2, 3, 4]
        await recorder.record(ws, _run(7))
        await recorder.close()
        assert await _stored(store, ws) == [0, 1, 2, 3, 4, 7]
    finally:
        os.close(held)


async def _rename(store: SqlStore, old: str, new: str) -> None:
    async with store.db.write() as session:
        await session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


async def test_records_wait_while_the_database_refuses_them(
    store: SqlStore, tmp_path: Path
) -> None:
    ws = await _workspace(store)
    recorder = Recorder(store, tmp_path / "journal")
    await recorder.start()
    await _rename(store, "executions", "executions_away")  # every insert fails now
    for i in range(3):
        await recorder.record(ws, _run(i))
    await recorder.flush()
    assert recorder.failures >= 1
    assert recorder.pending == 3
    assert len(list((tmp_path / "journal").glob("*/*.jsonl"))) >= 1
    await _rename(store, "executions_away", "executions")
    await recorder.flush()
    assert recorder.pending == 0
    assert await _stored(store, ws) == [0, 1, 2]
    await recorder.close()
    assert list((tmp_path / "journal").iterdir()) == []


async def test_the_change_feed_reads_out_of_order_commits(store: SqlStore) -> None:
    ws = await _workspace(store)
    catalog = Catalog(store, EgressDefaults())
    feed = ChangeFeed(store, catalog, interval=1.0)
    await feed.start()
    async with store.write() as repos:
        agent = await repos.agents.create(
            ws, name="a", document={"name": "a"}, secrets={}, secret_names=()
        )
    assert [(e.kind, e.ref) for e in await feed.poll()] == [("agent", agent.id)]
    assert await feed.poll() == []  # nothing new, nothing twice
    if store.backend != "postgresql":
        return  # SQLite writers take turns: numbers always commit in order
    async with store.write() as slow:  # takes the next number, commits last
        early = await slow.agents.create(
            ws, name="early", document={"name": "early"}, secrets={}, secret_names=()
        )
        async with store.write() as fast:
            late = await fast.agents.create(
                ws, name="late", document={"name": "late"}, secrets={}, secret_names=()
            )
        assert [e.ref for e in await feed.poll()] == [late.id]
    assert [e.ref for e in await feed.poll()] == [early.id]
    assert await feed.poll() == []
