"""The execute path's caches and other processes' changes: two servers on one database.

The change feed's poll is set to an hour, so nothing but the shared generation file of a data
directory (voicefn.server.freshness) can tell a server about the other's change in time. Servers
with their own data directories show the control: without the file, the cache keeps serving
what it had.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import create_agent, echo_function
from cryptography.fernet import Fernet
from live import Live, live_server

from voicefn.server import ServerConfig
from voicefn.server.freshness import FILE, SharedGeneration

HOUR = 3600.0


def execute(client: httpx.Client, order_id: str) -> httpx.Response:
    return client.post(
        "/v1/agents/agent_abc123/functions/check_order/execute",
        json={"arguments": {"order_id": order_id}},
    )


def two(config: ServerConfig, other_data_dir: Path | None) -> Iterator[tuple[Live, Live]]:
    other = (
        config if other_data_dir is None else dataclasses.replace(config, data_dir=other_data_dir)
    )
    with live_server(config) as one, live_server(other) as second:
        yield one, second


@pytest.fixture
def shared(config: ServerConfig) -> Iterator[tuple[Live, Live]]:
    """Two servers on one database and one data directory (as on one host)."""
    yield from two(dataclasses.replace(config, change_poll_s=HOUR), None)


@pytest.fixture
def apart(config: ServerConfig, tmp_path: Path) -> Iterator[tuple[Live, Live]]:
    """Two servers on one database with data directories of their own (one secret key)."""
    secret = Fernet.generate_key().decode()
    config = dataclasses.replace(config, change_poll_s=HOUR, secret_key=secret)
    yield from two(config, tmp_path / "other")


def warm(one: Live, second: Live, server: Any) -> tuple[str, dict[str, Any]]:
    """An agent, its function (version 1) and a second key; both servers have run it with the
    second key, so both have the key and the function cached. Returns (function id, the key)."""
    with one.client() as a:
        create_agent(a)
        fid = a.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()[
            "id"
        ]
        extra = a.post("/v1/api-keys", json={"name": "temp"}).json()
    for live in (one, second):
        with live.client(extra["key"]) as c:
            response = execute(c, "1")
            assert response.status_code == 200, response.text
            assert response.json()["version"] == 1
    return fid, extra


def change(client: httpx.Client, fid: str) -> None:
    """Version 2 of the function: its body gains ``"via": "one"``."""
    patched = client.patch(
        f"/v1/agents/agent_abc123/functions/{fid}",
        params={"dialect": "voicefn"},
        json={"action": {"param": {"order_id": "%(order_id)s", "via": "one"}}},
    )
    assert patched.status_code == 200, patched.text


def test_a_change_through_one_server_is_in_force_on_the_other_at_the_next_request(
    shared: tuple[Live, Live], server: Any
) -> None:
    one, second = shared
    fid, extra = warm(one, second, server)
    with one.client() as a, second.client(one.key) as b:
        change(a, fid)
        run = execute(b, "2")  # no wait: the very next request
        assert run.json()["version"] == 2
        assert server.received[-1].json == {"order_id": "2", "via": "one"}
        assert a.delete(f"/v1/api-keys/{extra['id']}").status_code == 200
    # the revoked key, on the other server, at once: the execute fast path and a FastAPI route
    with second.client(extra["key"]) as revoked:
        assert execute(revoked, "3").status_code == 401
        assert revoked.get("/v1/agents").status_code == 401


def test_without_the_shared_file_the_cache_serves_what_it_had(
    apart: tuple[Live, Live], server: Any
) -> None:
    one, second = apart
    fid, _ = warm(one, second, server)
    with one.client() as a, second.client(one.key) as b:
        change(a, fid)
        assert execute(a, "2").json()["version"] == 2  # the writer's own cache: at once
        assert execute(b, "2").json()["version"] == 1  # the poll is an hour away


def test_the_generation_moves_with_every_bump(tmp_path: Path) -> None:
    one, other = SharedGeneration(tmp_path / FILE), SharedGeneration(tmp_path / FILE)
    try:
        seen = {other.read()}
        for _ in range(20):
            one.bump()
            assert other.read() not in seen  # the other mapping sees each new value
            seen.add(other.read())
    finally:
        one.close()
        other.close()


def test_requests_arriving_together_after_a_change_all_see_it(
    shared: tuple[Live, Live], server: Any
) -> None:
    """Requests that reach the other server at once, while the first of them reads the change
    feed, wait for that read: none is served from the cache the change made stale."""
    import concurrent.futures

    one, second = shared
    fid, _ = warm(one, second, server)
    with one.client() as a:
        change(a, fid)

    def run(n: int) -> int:
        with second.client(one.key) as b:
            response = execute(b, str(n))
            assert response.status_code == 200, response.text
            return int(response.json()["version"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        versions = list(pool.map(run, range(32)))
    assert versions == [2] * 32
