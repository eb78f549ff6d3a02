"""Two ``voicefn serve`` processes on one PostgreSQL serve the same workspaces correctly: every
write is visible to the other at once through the API, and to the other's execute path through
the change feed; concurrent writes through both get distinct versions."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import create_agent, echo_function, wait_until
from cryptography.fernet import Fernet
from live import Process, serve_argv, serve_process
from platform_db import postgres_database


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_database() as url:
        yield url


@pytest.fixture
def two(pg_url: str, tmp_path: Path) -> Iterator[tuple[Process, Process]]:
    env = {"VOICEFN_SECRET_KEY": Fernet.generate_key().decode()}
    args = ("--allow-private-network", "--database-url", pg_url)
    with (
        serve_process(tmp_path / "one", *args, env=env) as one,
        serve_process(tmp_path / "two", *args, env=env) as two,
    ):
        yield one, two


def test_two_processes_serve_the_same_workspaces(two: tuple[Process, Process], server: Any) -> None:
    one, other = two
    assert one.key is not None
    assert other.key is None  # the first start happened once, in the first process
    key = one.key
    with one.client(key) as a, other.client(key) as b:
        create_agent(a)
        fid = a.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()[
            "id"
        ]
        assert b.get(f"/v1/agents/agent_abc123/functions/{fid}").json()["version"] == 1
        run = b.post(
            "/v1/agents/agent_abc123/functions/check_order/execute",
            json={"arguments": {"order_id": "1"}},
        ).json()
        assert (run["ok"], run["version"]) == (True, 1)
        # warm in the first process, then changed through the second
        assert (
            a.post(
                "/v1/agents/agent_abc123/functions/check_order/execute",
                json={"arguments": {"order_id": "2"}},
            ).json()["version"]
            == 1
        )
        b.patch(
            f"/v1/agents/agent_abc123/functions/{fid}",
            params={"dialect": "voicefn"},
            json={"action": {"param": {"order_id": "%(order_id)s", "via": "two"}}},
        )
        assert a.get(f"/v1/agents/agent_abc123/functions/{fid}").json()["version"] == 2

        def runs_new_version() -> bool:
            result = a.post(
                "/v1/agents/agent_abc123/functions/check_order/execute",
                json={"arguments": {"order_id": "3"}},
            ).json()
            return bool(result["version"] == 2)

        wait_until(runs_new_version, "the first process to run version 2")
        assert server.received[-1].json == {"order_id": "3", "via": "two"}
        wait_until(
            lambda: (
                run["execution_id"] in {e["id"] for e in a.get("/v1/executions").json()["data"]}
            ),
            "the second process's execution to be listed by the first",
        )
        extra = b.post("/v1/api-keys", json={"name": "temp"}).json()
        with one.client(extra["key"]) as temp:
            assert temp.get("/v1/agents").status_code == 200
            assert b.delete(f"/v1/api-keys/{extra['id']}").status_code == 200
            wait_until(
                lambda: temp.get("/v1/agents").status_code == 401,
                "the first process to refuse a key revoked through the second",
            )


def test_concurrent_writes_through_both_get_distinct_versions(
    two: tuple[Process, Process], server: Any
) -> None:
    one, other = two
    key = one.key
    assert key is not None
    with one.client(key) as a:
        create_agent(a)
        fid = a.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()[
            "id"
        ]
    versions: list[int] = []
    lock = threading.Lock()

    def writer(process: Process, i: int) -> None:
        with process.client(key) as client:
            for r in range(10):
                response = client.patch(
                    f"/v1/agents/agent_abc123/functions/{fid}",
                    params={"dialect": "voicefn"},
                    json={"description": f"Look up an order ({i}/{r})."},
                )
                assert response.status_code == 200, response.text
                with lock:
                    versions.append(response.json()["version"])

    threads = [threading.Thread(target=writer, args=(p, i)) for i, p in enumerate([one, other] * 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(versions) == list(range(2, 62))
    with other.client(key) as b:
        listed = b.get(f"/v1/agents/agent_abc123/functions/{fid}/versions").json()
    assert [v["version"] for v in listed["data"]] == list(range(61, 0, -1))


def test_a_server_with_another_secret_key_refuses_to_start(pg_url: str, tmp_path: Path) -> None:
    env = {"VOICEFN_SECRET_KEY": Fernet.generate_key().decode()}
    with serve_process(tmp_path / "one", "--database-url", pg_url, env=env):
        pass
    other = subprocess.run(
        serve_argv(tmp_path / "two", "--database-url", pg_url),
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        executable=sys.executable,
    )
    assert other.returncode != 0
    assert "VOICEFN_SECRET_KEY" in other.stderr
