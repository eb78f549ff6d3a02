"""Serving an agent's functions as MCP tools: the SDK's own client over its in-memory streams
(the legacy handshake era) and in-process direct dispatch (the 2026 era), real HTTP functions
behind them on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("mcp")

import mcp_types as types
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_support import memory_session

from voicefn import CallContext, Executor, load_function
from voicefn.integrations.mcp import (
    CONTEXT_META,
    DIRECTIVE_META,
    FILLER_META,
    build_server,
    tool_result,
)
from voicefn.results import ToolResult
from voicefn.runtime.agent import Agent

from servers import LocalServer


def functions(server: LocalServer) -> list[Any]:
    return [
        load_function(
            {
                "name": "check_order",
                "description": "Use when the caller asks where their order is.",
                "filler": {"en": "Let me check.", "hi": "मैं देखता हूँ।"},
                "parameters": {
                    "type": "object",
                    "properties": {
                        "order_id": {"type": "string", "description": "The order ID"},
                        "customer_id": {"type": "string", "description": "Filled by the call"},
                        "notes": {"type": ["string", "null"], "maxLength": 200},
                    },
                    "required": ["order_id", "customer_id"],
                },
                "action": {"method": "POST", "url": f"{server.url}/echo"},
            },
            variables=["customer_id"],
        ),
        load_function(
            {
                "name": "store_hours",
                "description": "Use when the caller asks when the store is open.",
                "action": {"method": "GET", "url": f"{server.url}/echo"},
            }
        ),
        load_function(
            {
                "name": "broken",
                "description": "Use to see an error.",
                "action": {"method": "GET", "url": f"{server.url}/status/503"},
            }
        ),
        load_function(
            {
                "name": "hang_up",
                "description": "Use when the caller says goodbye.",
                "action": {
                    "type": "builtin",
                    "builtin": "end_call",
                    "message": "Bye {customer_id}!",
                },
            },
            variables=["customer_id"],
        ),
        load_function(
            {
                "name": "after_call",
                "description": "A post-call function: not a tool.",
                "phase": "post_call",
                "action": {"method": "POST", "url": f"{server.url}/echo"},
            }
        ),
    ]


def agent(server: LocalServer) -> Agent:
    return Agent(name="store", variables={"customer_id": "C-7"}, functions=functions(server))


async def test_tools_are_the_in_call_functions_with_context_filled_parameters_removed(
    server: LocalServer,
) -> None:
    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        listed = (await session.list_tools()).tools
    tools = {t.name: t for t in listed}
    assert list(tools) == ["check_order", "store_hours", "broken", "hang_up"]
    check = tools["check_order"]
    assert check.description == "Use when the caller asks where their order is."
    # The schema as written, minus customer_id (the agent's variables fill it).
    assert check.input_schema == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order ID"},
            "notes": {"type": ["string", "null"], "maxLength": 200},
        },
        "required": ["order_id"],
    }
    assert check.meta == {FILLER_META: {"en": "Let me check.", "hi": "मैं देखता हूँ।"}}
    assert tools["store_hours"].annotations is not None
    assert tools["store_hours"].annotations.read_only_hint is True
    assert check.annotations is None


async def test_a_call_runs_the_function_and_the_context_wins_over_the_llm(
    server: LocalServer,
) -> None:
    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        result = await session.call_tool(
            "check_order", {"order_id": "ORD-1", "customer_id": "someone-else"}
        )
    assert result.is_error is False
    [sent] = server.received
    assert sent.json == {"order_id": "ORD-1", "customer_id": "C-7"}
    assert sent.headers["X-Voicefn-Agent-Id"] == "store"
    [block] = result.content
    assert isinstance(block, types.TextContent)
    assert json.loads(block.text)["path"] == "/echo"
    assert isinstance(result.structured_content, dict)
    assert result.structured_content["json"] == {"order_id": "ORD-1", "customer_id": "C-7"}


async def test_an_error_result_is_is_error_with_what_the_llm_would_read(
    server: LocalServer,
) -> None:
    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        failed = await session.call_tool("broken", {})
        missing = await session.call_tool("check_order", {})
    assert failed.is_error is True
    assert failed.structured_content is None
    text = failed.content[0].text  # type: ignore[union-attr]
    assert '"reason":"status"' in text
    assert '"status":503' in text
    assert missing.is_error is True
    assert '"missing_arguments"' in missing.content[0].text  # type: ignore[union-attr]
    assert [r.path for r in server.received] == ["/status/503"]  # nothing sent for the second


async def test_an_unknown_tool_is_a_protocol_error_naming_the_tools(server: LocalServer) -> None:
    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        with pytest.raises(MCPError) as caught:
            await session.call_tool("check_orders", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "check_order, store_hours, broken, hang_up" in caught.value.message


async def test_the_filler_goes_out_as_progress_and_a_builtin_directive_in_meta(
    server: LocalServer,
) -> None:
    said: list[str | None] = []

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        said.append(message)

    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        await session.call_tool("check_order", {"order_id": "ORD-1"}, progress_callback=progress)
        bye = await session.call_tool("hang_up", {})
    assert said == ["Let me check."]
    assert bye.is_error is False
    assert bye.meta is not None
    assert bye.meta[DIRECTIVE_META] == {"builtin": "end_call", "message": "Bye C-7!"}


async def test_the_client_names_its_call_in_meta_but_never_the_agent(server: LocalServer) -> None:
    meta = {
        CONTEXT_META: {
            "call_sid": "CA-42",
            "from_number": "+15550100",
            "variables": {"customer_id": "C-9", "agent_id": "other-agent"},
            "agent_id": "other-agent",
            "workspace_id": "other-workspace",
        }
    }
    async with (
        Executor(allow_private_network=True) as ex,
        memory_session(build_server(agent(server), ex)) as session,
    ):
        await session.call_tool("check_order", {"order_id": "ORD-1"}, meta=meta)
    [sent] = server.received
    assert sent.headers["X-Voicefn-Call-Id"] == "CA-42"
    assert sent.headers["X-Voicefn-Agent-Id"] == "store"
    assert sent.json["customer_id"] == "C-9"


async def test_the_2026_era_in_process_client_gets_the_same_tools_and_results(
    server: LocalServer,
) -> None:
    async with (
        Executor(allow_private_network=True) as ex,
        Client(build_server(agent(server), ex)) as client,
    ):
        assert client.protocol_version == "2026-07-28"
        names = [t.name for t in (await client.list_tools()).tools]
        ok = await client.call_tool("store_hours", {})
        failed = await client.call_tool("broken", {})
    assert names == ["check_order", "store_hours", "broken", "hang_up"]
    assert ok.is_error is False
    assert failed.is_error is True


async def test_every_call_gets_its_own_execution_id(server: LocalServer) -> None:
    async with Executor(allow_private_network=True) as ex:
        server_ = build_server(agent(server), ex, lambda: CallContext(agent_id="from-host"))
        async with memory_session(server_) as session:
            for _ in range(2):
                await session.call_tool("store_hours", {})
    ids = [r.headers["X-Voicefn-Call-Id"] for r in server.received]
    assert len(set(ids)) == 2
    # The context factory's agent_id wins over the agent's name (the host said which agent).
    assert {r.headers["X-Voicefn-Agent-Id"] for r in server.received} == {"from-host"}


def test_tool_result_keeps_structured_content_only_when_whole() -> None:
    whole = tool_result(ToolResult("f", True, '{"a":1}', data={"a": 1}))
    cut = tool_result(ToolResult("f", True, '{"a":1', data={"a": 1}, truncated=True))
    text = tool_result(ToolResult("f", True, "plain", data="plain"))
    assert whole.structured_content == {"a": 1}
    assert cut.structured_content is None
    assert text.structured_content is None
    assert whole.is_error is cut.is_error is text.is_error is False
