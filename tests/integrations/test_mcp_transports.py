"""Over real transports: ``voicefn mcp serve`` as a process speaking stdio and streamable HTTP
(on a port it picks), an agent consuming a ``command`` server over stdio, and McpEndpoint mounted
the way a service mounts it (per-request agent and key)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_support import serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from voicefn import CallContext, Executor, load_function
from voicefn.integrations.mcp import McpBinding, McpEndpoint
from voicefn.runtime.agent import Agent, load_agent, validate_agent

from servers import LocalServer

VOICEFN = str(Path(sys.executable).with_name("voicefn"))


def agent_file(tmp_path: Path, server: LocalServer) -> Path:
    fn = {
        "name": "check_order",
        "description": "Use when the caller asks where their order is.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string", "description": "The order ID"},
                "customer_name": {"type": "string", "description": "Filled by the call"},
            },
            "required": ["order_id"],
        },
        "action": {"method": "POST", "url": f"{server.url}/echo"},
    }
    path = tmp_path / "agent.json"
    path.write_text(
        json.dumps(
            {"name": "store", "variables": {"customer_name": "Ana"}, "functions": [fn]}, indent=2
        )
    )
    return path


async def test_mcp_serve_over_stdio(tmp_path: Path, server: LocalServer) -> None:
    params = StdioServerParameters(
        command=VOICEFN,
        args=["mcp", "serve", str(agent_file(tmp_path, server)), "--allow-private-network"],
    )
    async with Client(params) as client:
        [tool] = (await client.list_tools()).tools
        result = await client.call_tool("check_order", {"order_id": "ORD-1"})
    assert tool.name == "check_order"
    assert list(tool.input_schema["properties"]) == ["order_id"]  # customer_name: the agent's
    assert result.is_error is False
    assert server.received[0].json == {"order_id": "ORD-1", "customer_name": "Ana"}


async def test_an_agent_consumes_a_command_server_over_stdio_only_when_allowed(
    tmp_path: Path, server: LocalServer
) -> None:
    served = agent_file(tmp_path, server)
    doc = {
        "functions": [
            {
                "mcp": {
                    "command": VOICEFN,
                    "args": ["mcp", "serve", str(served), "--allow-private-network"],
                    "filler": "One moment.",
                }
            }
        ]
    }
    refused = validate_agent(doc, allow_mcp_commands=False)
    [problem] = refused.errors
    assert problem.path == "$.functions[0].mcp.command"
    assert "VOICEFN_ALLOW_MCP_COMMANDS=1" in problem.fix
    agent = load_agent(doc, allow_mcp_commands=True)
    [fn] = agent.functions
    async with Executor(allow_mcp_commands=False) as strict:
        blocked = await strict.run(fn, {"order_id": "ORD-2"})
    async with Executor(allow_mcp_commands=True) as ex:
        first = await ex.run(fn, {"order_id": "ORD-2"}, CallContext(call_sid="CA-1"))
        second = await ex.run(fn, {"order_id": "ORD-3"}, CallContext(call_sid="CA-1"))
        assert len(ex.mcp) == 1  # one process for both calls
    assert blocked.data["reason"] == "blocked"
    assert first.ok, first.content
    assert second.ok, second.content
    assert [r.json["order_id"] for r in server.received] == ["ORD-2", "ORD-3"]


@pytest.fixture
def http_serve(tmp_path: Path, server: LocalServer) -> Iterator[tuple[str, str]]:
    token = "t0ken-for-tests"
    proc = subprocess.Popen(
        [
            VOICEFN,
            "mcp",
            "serve",
            str(agent_file(tmp_path, server)),
            "--http",
            "--port",
            "0",
            "--token",
            token,
            "--allow-private-network",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "VOICEFN_MCP_TOKEN": ""},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield json.loads(line)["url"], token
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


async def test_mcp_serve_over_http_with_a_token(
    http_serve: tuple[str, str], server: LocalServer
) -> None:
    url, token = http_serve
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/mcp")
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        [tool] = (await client.list_tools()).tools
        failed = await client.call_tool("check_order", {})
        result = await client.call_tool("check_order", {"order_id": "ORD-7"})
    assert tool.name == "check_order"
    assert failed.is_error is True
    assert result.is_error is False
    assert [r.json for r in server.received] == [{"order_id": "ORD-7", "customer_name": "Ana"}]
    async with httpx2.AsyncClient() as http:
        anonymous = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert anonymous.status_code == 401


async def _resolver_app(
    agents: dict[str, Agent], keys: dict[str, str], seen: list[CallContext]
) -> Starlette:
    """A service the way the platform mounts MCP: path parameter = agent, bearer key = tenant."""
    executor = Executor(allow_private_network=True)

    async def record(function: Any, result: Any, context: CallContext) -> None:
        seen.append(context)

    async def resolve(request: Request) -> McpBinding | Response:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        workspace = keys.get(key)
        if workspace is None:
            return JSONResponse({"detail": "invalid API key"}, status_code=401)
        agent_id = request.path_params["agent_id"]
        agent = agents.get(f"{workspace}/{agent_id}")
        if agent is None:
            return JSONResponse({"detail": "agent not found"}, status_code=404)
        return McpBinding(
            agent,
            executor,
            lambda: CallContext(agent_id=agent_id, workspace_id=workspace),
            on_result=record,
        )

    endpoint = McpEndpoint(resolve)

    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with executor, endpoint.run():
            yield

    return Starlette(routes=[endpoint.route("/v1/agents/{agent_id}/mcp")], lifespan=lifespan)


async def test_an_endpoint_serves_each_agent_to_its_own_workspace_only(
    server: LocalServer,
) -> None:
    def agent(name: str) -> Agent:
        fn = load_function(
            {
                "name": f"{name}_tool",
                "description": f"The {name} tool.",
                "action": {"method": "GET", "url": f"{server.url}/echo"},
            }
        )
        return Agent(name=name, functions=[fn])

    agents = {"w1/a1": agent("alpha"), "w2/a2": agent("beta")}
    keys = {"key-one": "w1", "key-two": "w2"}
    seen: list[CallContext] = []
    with serve_in_thread(lambda: _resolver_app(agents, keys, seen), path="") as running:
        base = running.url
        async with httpx2.AsyncClient(headers={"Authorization": "Bearer key-one"}) as http:
            async with Client(
                streamable_http_client(f"{base}/v1/agents/a1/mcp", http_client=http)
            ) as c:
                names = [t.name for t in (await c.list_tools()).tools]
                result = await c.call_tool("alpha_tool", {})
            other = await http.post(
                f"{base}/v1/agents/a2/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(
                f"{base}/v1/agents/a1/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            )
    assert names == ["alpha_tool"]
    assert result.is_error is False
    assert other.status_code == 404  # w1's key cannot see w2's agent
    assert anonymous.status_code == 401
    [ctx] = seen
    assert (ctx.agent_id, ctx.workspace_id) == ("a1", "w1")
    assert server.received[0].headers["X-Voicefn-Agent-Id"] == "a1"
