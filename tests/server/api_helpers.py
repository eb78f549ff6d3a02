"""Documents and calls the API tests share."""

from __future__ import annotations

from typing import Any

import httpx


def echo_function(url: str, name: str = "check_order", **action: Any) -> dict[str, Any]:
    """A canonical function that POSTs ``{"order_id": ...}`` to the test server's /echo."""
    return {
        "name": name,
        "description": "Look up an order when the caller asks where it is.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "the order id"}},
            "required": ["order_id"],
        },
        "filler": {"en": "Let me check.", "hi": "Ek minute."},
        "action": {
            "type": "http",
            "method": "POST",
            "url": f"{url}/echo",
            "param": {"order_id": "%(order_id)s"},
            **action,
        },
    }


def create_agent(api: httpx.Client, agent_id: str = "agent_abc123", **doc: Any) -> dict[str, Any]:
    body = {"name": agent_id, "system_prompt": "You help callers.", **doc}
    response = api.put(f"/v1/agents/{agent_id}", json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


def database_text(url: str) -> str:
    """Every value of every table of the database at ``url``, as one text (to search it)."""
    import asyncio

    if url.startswith("sqlite"):
        import sqlite3

        path = url.split(":///", 1)[1]
        with sqlite3.connect(path) as db:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            return "\n".join(
                repr(row) for t in tables for row in db.execute(f'SELECT * FROM "{t}"')
            )

    async def read() -> str:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            out = []
            for t in tables:
                out += [repr(dict(r)) for r in await conn.fetch(f'SELECT * FROM "{t[0]}"')]
            return "\n".join(out)
        finally:
            await conn.close()

    return asyncio.run(read())


def wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check()`` until it returns something truthy (eventual, never a timing claim)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def database_execute(url: str, sql: str) -> None:
    """Run one statement on the database at ``url`` (to break stored data on purpose)."""
    import asyncio

    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split(":///", 1)[1]) as db:
            db.execute(sql)
        return

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())
