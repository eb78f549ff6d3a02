"""The SQL repositories on SQLite and PostgreSQL: tenancy, versions, keys, executions, changes."""

from __future__ import annotations

import pytest

from voicefn.store import (
    BadCursor,
    ExecutionFilter,
    ExecutionRecord,
    LastKey,
    NameTaken,
    SqlStore,
    Workspace,
)
from voicefn.store.ids import ordered_id


def _doc(name: str, url: str = "https://api.example.com/x") -> dict[str, object]:
    return {
        "name": name,
        "description": "d",
        "action": {"type": "http", "method": "GET", "url": url},
    }


async def _agent(store: SqlStore, ws: Workspace, name: str = "agent") -> str:
    async with store.write() as repos:
        record = await repos.agents.create(
            ws, name=name, document={"name": name}, secrets={}, secret_names=()
        )
    return record.id


async def test_a_workspace_sees_only_its_own_agents_and_functions(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    a, b = two_workspaces
    agent_a = await _agent(store, a, "same-name")
    agent_b = await _agent(store, b, "same-name")  # names are per workspace
    async with store.write() as repos:
        fn = await repos.functions.create(
            a, agent_a, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
    async with store.read() as repos:
        assert await repos.agents.get(b, agent_a) is None
        assert await repos.functions.get(b, agent_a, fn.id) is None
        assert await repos.functions.by_name(b, agent_a, "f") is None
        assert await repos.functions.versions(b, agent_a, fn.id) is None
        assert [x.id for x in (await repos.agents.page(b, limit=10, cursor=None)).items] == [
            agent_b
        ]
        assert (await repos.functions.get(a, agent_a, fn.id)) is not None
    async with store.write() as repos:
        assert await repos.agents.delete(b, agent_a) is False
        assert await repos.functions.delete(b, agent_a, fn.id) is False
        missing = await repos.functions.update(
            b, agent_a, fn.id, name="f", document=_doc("f"), secrets={}, secret_names=(),
            dialect="voicefn",
        )  # fmt: skip
        assert missing is None
    async with store.read() as repos:
        assert (await repos.functions.get(a, agent_a, fn.id)) is not None


async def test_every_change_is_a_version_and_old_ones_stay_readable(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    ws, _ = two_workspaces
    agent = await _agent(store, ws)
    async with store.write() as repos:
        fn = await repos.functions.create(
            ws, agent, name="f", document=_doc("f", "https://a.example/1"),
            secrets={"k": "v1"}, secret_names=(), dialect="bolna",
        )  # fmt: skip
        v2 = await repos.functions.update(
            ws, agent, fn.id, name="g", document=_doc("g", "https://a.example/2"),
            secrets={"k": "v2"}, secret_names=("X-Key",), dialect="voicefn",
        )  # fmt: skip
        v3 = await repos.functions.update(
            ws, agent, fn.id, name="f", document=_doc("f", "https://a.example/1"),
            secrets={"k": "v1"}, secret_names=(), dialect="bolna", change="restore",
            restored_from=1,
        )  # fmt: skip
    assert (fn.version, v2 and v2.version, v3 and v3.version) == (1, 2, 3)
    async with store.read() as repos:
        versions = await repos.functions.versions(ws, agent, fn.id)
        old = await repos.functions.version(ws, agent, fn.id, 2)
        current = await repos.functions.get(ws, agent, fn.id)
    assert versions is not None
    assert [v.version for v in versions] == [3, 2, 1]
    assert [v.change for v in versions] == ["restore", "update", "create"]
    assert versions[0].restored_from == 1
    assert old is not None
    assert old.name == "g"
    assert old.secrets == {"k": "v2"}
    assert old.document["action"]["url"] == "https://a.example/2"
    assert current is not None
    assert current.version == 3
    assert current.name == "f"


async def test_names_are_unique_per_agent_and_per_workspace(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    ws, _ = two_workspaces
    agent = await _agent(store, ws)
    other = await _agent(store, ws, "other")
    with pytest.raises(NameTaken):
        await _agent(store, ws)
    async with store.write() as repos:
        f = await repos.functions.create(
            ws, agent, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
        await repos.functions.create(
            ws, other, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
        g = await repos.functions.create(
            ws, agent, name="g", document=_doc("g"), secrets={}, secret_names=(), dialect="voicefn"
        )
    with pytest.raises(NameTaken):
        async with store.write() as repos:
            await repos.functions.update(
                ws, agent, g.id, name="f", document=_doc("f"), secrets={}, secret_names=(),
                dialect="voicefn",
            )  # fmt: skip
    async with store.read() as repos:  # the failed rename changed nothing
        still = await repos.functions.get(ws, agent, g.id)
        versions = await repos.functions.versions(ws, agent, g.id)
    assert still is not None
    assert still.name == "g"
    assert still.version == 1
    assert versions is not None
    assert len(versions) == 1
    assert f.name == "f"


async def test_deleting_a_function_keeps_its_versions_and_frees_its_name(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    ws, _ = two_workspaces
    agent = await _agent(store, ws)
    async with store.write() as repos:
        f = await repos.functions.create(
            ws, agent, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
        assert await repos.functions.delete(ws, agent, f.id)
        again = await repos.functions.create(
            ws, agent, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
    assert again.id != f.id
    async with store.read() as repos:
        assert await repos.functions.get(ws, agent, f.id) is None


async def test_api_keys_are_stored_hashed_and_revocable(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    a, b = two_workspaces
    async with store.write() as repos:
        first = await repos.keys.create(a, "one", operator=True)
        second = await repos.keys.create(a, "two")
        other = await repos.keys.create(b, "b")
    async with store.read() as repos:
        who = await repos.keys.authenticate(first.secret)
        assert who is not None
        assert who.workspace.id == a.id
        assert who.operator
        assert await repos.keys.authenticate(first.secret + "x") is None
        assert [k.id for k in await repos.keys.all(b)] == [other.record.id]
    raw = await _column_values(store, "api_keys", "hash")
    assert first.secret not in raw
    assert all(len(h) == 64 for h in raw)
    async with store.write() as repos:
        assert await repos.keys.revoke(b, first.record.id) is None  # not b's key
        revoked = await repos.keys.revoke(a, first.record.id)
    assert revoked is not None
    assert revoked.revoked_us is not None
    async with store.read() as repos:
        assert await repos.keys.authenticate(first.secret) is None
        assert await repos.keys.authenticate(second.secret) is not None
    with pytest.raises(LastKey):
        async with store.write() as repos:
            await repos.keys.revoke(a, second.record.id)


async def _column_values(store: SqlStore, table: str, column: str) -> list[str]:
    from sqlalchemy import text

    async with store.db.read() as session:
        rows = await session.execute(text(f"SELECT {column} FROM {table}"))
        return [str(r[0]) for r in rows]


def _execution(
    i: int, *, ok: bool = True, agent: str = "agent_1", fn: str = "fn_1"
) -> ExecutionRecord:
    started = 1_700_000_000_000_000 + i * 1000
    return ExecutionRecord(
        id=ordered_id("ex", started), agent_id=agent, function_id=fn, function_name="f",
        function_version=1, source="execute", ok=ok, status=200 if ok else 503,
        error=None if ok else "request_failed", arguments={"i": i}, request=None,
        result="{}", timings={"total_ms": 1.0}, call_sid=None, tool_call_id=None,
        started_us=started, total_ms=1.0,
    )  # fmt: skip


async def test_executions_page_newest_first_with_filters_and_replays_are_skipped(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    a, b = two_workspaces
    rows = [(a, _execution(i, ok=i % 3 != 0, fn="fn_2" if i % 2 else "fn_1")) for i in range(25)]
    async with store.write() as repos:
        await repos.executions.add(rows)
        await repos.executions.add(rows[:5])  # a journal replayed after a crash
        await repos.executions.add([(b, _execution(100))])
    seen: list[str] = []
    cursor = None
    while True:
        async with store.read() as repos:
            page = await repos.executions.page(a, ExecutionFilter(), limit=7, cursor=cursor)
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted((r.id for _, r in rows), reverse=True)
    async with store.read() as repos:
        failed = await repos.executions.page(
            a, ExecutionFilter(status="error"), limit=100, cursor=None
        )
        by_code = await repos.executions.page(
            a, ExecutionFilter(status="request_failed", function_id="fn_2"), limit=100, cursor=None
        )
        window = await repos.executions.page(
            a,
            ExecutionFilter(since_us=rows[5][1].started_us, until_us=rows[10][1].started_us),
            limit=100,
            cursor=None,
        )
        assert await repos.executions.get(b, rows[0][1].id) is None
        with pytest.raises(BadCursor):
            await repos.executions.page(a, ExecutionFilter(), limit=5, cursor="bm90LWEtY3Vyc29y")
    assert {r.id for r in failed.items} == {r.id for _, r in rows if not r.ok}
    assert {r.id for r in by_code.items} == {
        r.id for _, r in rows if not r.ok and r.function_id == "fn_2"
    }
    assert [r.arguments["i"] for r in window.items] == [9, 8, 7, 6, 5]


async def test_every_write_appends_to_the_change_feed(
    store: SqlStore, two_workspaces: tuple[Workspace, Workspace]
) -> None:
    ws, _ = two_workspaces
    async with store.read() as repos:
        start = await repos.changes.latest()
    agent = await _agent(store, ws)
    async with store.write() as repos:
        await repos.functions.create(
            ws, agent, name="f", document=_doc("f"), secrets={}, secret_names=(), dialect="voicefn"
        )
    async with store.read() as repos:
        events = await repos.changes.since(start)
    assert [(e.workspace_id, e.kind, e.ref) for e in events] == [
        (ws.id, "agent", agent),
        (ws.id, "functions", agent),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
