"""``/v1/agents/{agent_id}/mcp`` on the real service: an agent's functions as MCP tools, behind
the workspace's API key, run through its Executor and recorded like executes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from api_helpers import create_agent, echo_function
from live import Live

pytest.importorskip("mcp")

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def _tools_and_call(url: str, key: str) -> tuple[list[str], Any, Any]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        tools = [t.name for t in (await client.list_tools()).tools]
        ok = await client.call_tool("check_order", {"order_id": "ORD-9"})
        missing = await client.call_tool("check_order", {})
    return tools, ok, missing


def test_an_agents_functions_are_mcp_tools_behind_the_workspace_key(
    live: Live, api: httpx.Client, server: Any
) -> None:
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    url = f"{live.url}/v1/agents/agent_abc123/mcp"
    tools, ok, missing = asyncio.run(_tools_and_call(url, live.key))
    assert tools == ["check_order"]
    assert ok.is_error is False
    assert '"order_id": "ORD-9"' in ok.content[0].text
    assert missing.is_error is True
    assert server.received[-1].json == {"order_id": "ORD-9"}
    assert server.received[-1].headers["X-Voicefn-Agent-Id"] == "agent_abc123"
    recorded = api.get("/v1/executions").json()["data"]
    assert {(e["source"], e["ok"]) for e in recorded} == {("mcp", True), ("mcp", False)}


def test_another_workspace_and_no_key_get_nothing(
    live: Live, api: httpx.Client, server: Any
) -> None:
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    b_key = api.post("/v1/workspaces", json={"name": "tenant-b"}).json()["api_key"]["key"]
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    with httpx.Client(base_url=live.url, headers=headers) as plain:
        theirs = plain.post(
            "/v1/agents/agent_abc123/mcp",
            json=listing,
            headers={"Authorization": f"Bearer {b_key}"},
        )
        made_up = plain.post(
            "/v1/agents/no_such_agent/mcp",
            json=listing,
            headers={"Authorization": f"Bearer {b_key}"},
        )
        anonymous = plain.post("/v1/agents/agent_abc123/mcp", json=listing)
    assert theirs.status_code == made_up.status_code == 404
    assert theirs.json()["message"].replace("agent_abc123", "X") == made_up.json()[
        "message"
    ].replace("no_such_agent", "X")
    assert anonymous.status_code == 401
    assert len(server.received) == 0
