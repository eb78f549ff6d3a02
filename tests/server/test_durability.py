"""Writers under load: 50 concurrent writers lose nothing, and ``kill -9`` in the middle of
writes loses nothing that was acknowledged (functions, versions, and executions: those are
journaled before the response is sent)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
from api_helpers import create_agent, echo_function
from live import Live, serve_process

WRITERS = 50
ROUNDS = 4


def test_fifty_concurrent_writers_lose_nothing(live: Live, api: httpx.Client, server: Any) -> None:
    create_agent(api)
    shared = api.post(
        "/v1/agents/agent_abc123/functions", json=echo_function(server.url, "shared")
    ).json()
    base = "/v1/agents/agent_abc123/functions"
    created: list[str] = []
    patched: list[int] = []
    executed: list[str] = []

    async def writer(i: int, client: httpx.AsyncClient) -> None:
        for r in range(ROUNDS):
            kind = (i + r) % 3
            if kind == 0:
                doc = echo_function(server.url, f"fn_{i}_{r}")
                response = await client.post(base, json=doc)
                assert response.status_code == 201, response.text
                created.append(response.json()["id"])
            elif kind == 1:
                response = await client.patch(
                    f"{base}/{shared['id']}",
                    params={"dialect": "voicefn"},
                    json={"description": f"Look up an order, writer {i} round {r}."},
                )
                assert response.status_code == 200, response.text
                patched.append(response.json()["version"])
            else:
                response = await client.post(
                    f"{base}/shared/execute", json={"arguments": {"order_id": f"{i}-{r}"}}
                )
                assert response.status_code == 200, response.text
                assert response.json()["ok"] is True
                executed.append(response.json()["execution_id"])

    async def all_writers() -> None:
        limits = httpx.Limits(max_connections=WRITERS)
        headers = {"Authorization": f"Bearer {live.key}"}
        async with httpx.AsyncClient(
            base_url=live.url, headers=headers, timeout=120, limits=limits
        ) as client:
            await asyncio.gather(*(writer(i, client) for i in range(WRITERS)))

    asyncio.run(all_writers())

    assert len(created) + len(patched) + len(executed) == WRITERS * ROUNDS
    listed = {f["id"] for f in api.get(base).json()["data"]}
    assert set(created) <= listed
    assert len(listed) == len(created) + 1
    assert sorted(patched) == list(range(2, len(patched) + 2))  # no version given twice
    versions = api.get(f"{base}/{shared['id']}/versions").json()
    assert [v["version"] for v in versions["data"]] == list(range(len(patched) + 1, 0, -1))
    recorded: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/executions", params=params).json()
        recorded |= {e["id"] for e in page["data"]}
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert recorded == set(executed)


def test_kill_9_in_the_middle_of_writes_loses_nothing_acknowledged(
    tmp_path: Path, db_url: str, server: Any
) -> None:
    data = tmp_path / "data"
    args = ("--allow-private-network", "--database-url", db_url)
    acknowledged_functions: list[str] = []
    acknowledged_runs: list[str] = []
    stop = threading.Event()
    enough = threading.Event()
    lock = threading.Lock()

    with serve_process(data, *args) as first:
        assert first.key is not None
        key = first.key
        with first.client(key) as api:
            create_agent(api)
            api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url, "shared"))

        def writer(i: int) -> None:
            with first.client(key) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    try:
                        if n % 2:
                            doc = echo_function(server.url, f"w{i}_{n}")
                            r = client.post("/v1/agents/agent_abc123/functions", json=doc)
                            if r.status_code == 201:
                                with lock:
                                    acknowledged_functions.append(r.json()["id"])
                        else:
                            r = client.post(
                                "/v1/agents/agent_abc123/functions/shared/execute",
                                json={"arguments": {"order_id": str(n)}},
                            )
                            if r.status_code == 200:
                                with lock:
                                    acknowledged_runs.append(r.json()["execution_id"])
                    except httpx.HTTPError:
                        return  # the server is gone: this write was never acknowledged
                    with lock:
                        if len(acknowledged_functions) >= 20 and len(acknowledged_runs) >= 20:
                            enough.set()

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        assert enough.wait(120), "the writers made no progress"
        first.kill()  # SIGKILL while the writers are still writing
        stop.set()
        for t in threads:
            t.join(60)
        with lock:
            functions, runs = list(acknowledged_functions), list(acknowledged_runs)

    with serve_process(data, *args) as second:
        assert second.key is None  # not a first start
        with second.client(key) as api:
            listed = {f["id"] for f in api.get("/v1/agents/agent_abc123/functions").json()["data"]}
            assert set(functions) <= listed
            found: set[str] = set()
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
                page = api.get("/v1/executions", params=params).json()
                found |= {e["id"] for e in page["data"]}
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert set(runs) <= found
    assert len(functions) >= 20
    assert len(runs) >= 20
