"""An agent's ``{mcp: ...}`` functions entry: a real MCP server over streamable HTTP on a free
loopback port (uvicorn, its own thread and loop), its tools loaded as functions and run by the
Executor and a CallSession. Nothing of ours is patched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp_support import Running, Upstream, serve_in_thread, upstream_server

from voicefn import CallContext, Executor
from voicefn.egress import EgressPolicy
from voicefn.integrations.mcp import http_app
from voicefn.runtime import CallSession, Filler, FunctionFinished, load_agent
from voicefn.runtime.agent import validate_agent
from voicefn.spec import McpAction
from voicefn.testing import Reply, ScriptedLLM, text, tool_call

LOCAL = EgressPolicy(allow_private_network=True)


@pytest.fixture
def upstream() -> Iterator[tuple[Running, Upstream]]:
    state = Upstream()
    with serve_in_thread(lambda: http_app(upstream_server(state))) as running:
        yield running, state


def entry(url: str, **extra: Any) -> dict[str, Any]:
    return {"mcp": {"url": url, **extra}}


def test_each_tool_becomes_a_function(upstream: tuple[Running, Upstream]) -> None:
    running, _ = upstream
    report = validate_agent(
        {"functions": [entry(running.url, filler="One moment.", prefix="shop_", timeout_ms=8000)]},
        egress=LOCAL,
    )
    assert report.agent is not None, [str(p) for p in report.all_problems()]
    functions = {f.name: f for f in report.agent.functions}
    assert list(functions) == [
        "shop_orders_lookup",
        "shop_refund",
        "shop_picture",
        "shop_whoami",
        "shop_hang",
        "shop_nodesc",
    ]
    lookup = functions["shop_orders_lookup"]
    assert lookup.description == "Look up an order by its ID."
    assert lookup.filler == "One moment."
    assert lookup.allow_repeat is True  # the server says it is read-only
    assert functions["shop_refund"].allow_repeat is None
    # $ref inlined, $defs gone: what the LLM sees needs no reference resolution.
    assert lookup.parameters == {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "The order ID, e.g. ORD-1"},
            "channel": {
                "type": "string",
                "enum": ["phone", "web"],
                "description": "Where it came from",
            },
            "call_sid": {"type": "string", "description": "The call"},
        },
        "required": ["order_id"],
    }
    assert isinstance(lookup.action, McpAction)
    assert (lookup.action.url, lookup.action.tool, lookup.action.timeout_ms) == (
        running.url,
        "orders.lookup",
        8000,
    )
    # A tool without a description gets a plain one, and a warning says so.
    assert functions["shop_nodesc"].description == "Use the nodesc tool."
    warnings = [p for p in report.all_problems() if p.severity == "warning"]
    assert any("'nodesc'" in p.message for p in warnings)


def test_allowed_tools_picks_and_a_typo_is_named(upstream: tuple[Running, Upstream]) -> None:
    running, _ = upstream
    ok = validate_agent({"functions": [entry(running.url, allowed_tools=["refund"])]}, egress=LOCAL)
    assert ok.agent is not None
    assert [f.name for f in ok.agent.functions] == ["refund"]
    bad = validate_agent(
        {"functions": [entry(running.url, allowed_tools=["refund", "orders.lookp"])]}, egress=LOCAL
    )
    assert bad.agent is None
    [problem] = bad.errors
    assert problem.path == "$.functions[0].mcp.allowed_tools[1]"
    assert "did you mean 'orders.lookup'?" in problem.fix


def test_the_entry_is_checked_before_anything_is_contacted() -> None:
    report = validate_agent(
        {"functions": [{"mcp": {"url": "ftp://x", "allowed_tool": ["a"]}, "filler": "x"}]},
        egress=LOCAL,
    )
    paths = {p.path: p for p in report.errors}
    assert "did you mean 'allowed_tools'?" in paths["$.functions[0].mcp.allowed_tool"].fix
    assert "$.functions[0].mcp.url" in paths
    assert "put it inside mcp:" in paths["$.functions[0].filler"].fix
    neither = validate_agent({"functions": [{"mcp": {"headers": {"A": "b"}}}]}, discover_mcp=False)
    assert "url (streamable HTTP) or command" in neither.errors[0].message


def test_the_egress_policy_guards_the_server_url(upstream: tuple[Running, Upstream]) -> None:
    running, state = upstream
    report = validate_agent({"functions": [entry(running.url)]})  # the default policy
    [problem] = report.errors
    assert problem.path == "$.functions[0].mcp.url"
    assert "loopback" in problem.message
    assert "VOICEFN_ALLOW_PRIVATE_NETWORK=1" in problem.fix
    assert state.calls == []


async def test_a_call_runs_the_tool_with_context_arguments_and_structured_content(
    upstream: tuple[Running, Upstream],
) -> None:
    running, state = upstream
    agent = load_agent({"functions": [entry(running.url)]}, egress=LOCAL)
    lookup = agent.function("orders_lookup")
    assert lookup is not None
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(
            lookup,
            '{"order_id": "ORD-1", "channel": "phone", "call_sid": "from-the-llm"}',
            CallContext(call_sid="CA-1", agent_id="store"),
        )
        assert len(ex.mcp) == 1
    assert result.ok, result.content
    assert result.data == {"order_id": "ORD-1", "status": "shipped", "channel": "phone"}
    assert json.loads(result.content) == result.data
    [call] = state.calls
    assert call["name"] == "orders.lookup"
    assert call["arguments"] == {"order_id": "ORD-1", "channel": "phone", "call_sid": "CA-1"}
    assert call["meta"]["voicefn/call_id"] == "CA-1"
    assert call["meta"]["voicefn/agent_id"] == "store"
    assert result.request is not None
    assert result.request.method == "tools/call"
    assert result.request.body == {"name": "orders.lookup", "arguments": call["arguments"]}
    assert result.timings.request_ms is not None


async def test_tool_errors_images_and_bad_arguments(upstream: tuple[Running, Upstream]) -> None:
    running, state = upstream
    agent = load_agent({"functions": [entry(running.url)]}, egress=LOCAL)
    async with Executor(allow_private_network=True) as ex:
        refund = await ex.run(agent.functions[1], {"order_id": "ORD-1"})
        picture = await ex.run(agent.functions[2], {})
        missing = await ex.run(agent.functions[0], {})
    assert refund.ok is False
    assert refund.data == {
        "error": "request_failed",
        "reason": "tool_error",
        "detail": "Refunds need a supervisor.",
    }
    assert picture.ok is True
    assert picture.content == "Here it is.\n[image: image/png, 32 bytes]"
    assert missing.error == "missing_arguments"
    assert [c["name"] for c in state.calls] == ["refund", "picture"]  # nothing sent for the last


async def test_headers_take_call_variables_and_secrets_stay_out(
    upstream: tuple[Running, Upstream],
) -> None:
    running, state = upstream
    doc = {
        "variables": {"mcp_token": "discovery-token-1234"},
        "functions": [entry(running.url, headers={"Authorization": "Bearer {mcp_token}"})],
    }
    agent = load_agent(doc, egress=LOCAL)
    whoami = agent.function("whoami")
    assert whoami is not None
    async with Executor(allow_private_network=True) as ex:
        result = await ex.run(
            whoami, {}, agent.call_context(CallContext(variables={"mcp_token": "call-token-5678"}))
        )
        unset = await ex.run(whoami, {}, CallContext())
    assert state.calls[0]["headers"]["authorization"] == "Bearer call-token-5678"
    assert "call-token-5678" not in result.content
    assert result.content == "you sent [redacted]"
    assert result.request is not None
    assert result.request.headers == {"Authorization": "[redacted]"}
    assert unset.ok is False
    assert unset.data["reason"] == "template"
    assert len(state.calls) == 1


async def test_a_silent_tool_times_out_and_the_session_stays_usable(
    upstream: tuple[Running, Upstream],
) -> None:
    running, _ = upstream
    agent = load_agent({"functions": [entry(running.url, timeout_ms=300)]}, egress=LOCAL)
    async with Executor(allow_private_network=True) as ex:
        hung = await ex.run(agent.function("hang"), {})  # type: ignore[arg-type]
        after = await ex.run(agent.function("picture"), {})  # type: ignore[arg-type]
    assert hung.data["reason"] == "timeout"
    assert "300 ms" in hung.data["detail"]
    assert after.ok is True


async def test_one_session_per_server_and_tenant(upstream: tuple[Running, Upstream]) -> None:
    running, state = upstream
    agent = load_agent({"functions": [entry(running.url)]}, egress=LOCAL)
    picture = agent.function("picture")
    assert picture is not None
    async with Executor(allow_private_network=True) as ex:
        for _ in range(3):
            assert (await ex.run(picture, {}, CallContext(workspace_id="w1"))).ok
        assert len(ex.mcp) == 1
        assert (await ex.run(picture, {}, CallContext(workspace_id="w2"))).ok
        assert len(ex.mcp) == 2
    assert len(ex.mcp) == 0
    assert len(state.calls) == 4


async def test_a_strict_executor_refuses_the_server_and_sends_nothing(
    upstream: tuple[Running, Upstream],
) -> None:
    running, state = upstream
    agent = load_agent({"functions": [entry(running.url)]}, egress=LOCAL)
    async with Executor() as ex:
        result = await ex.run(agent.functions[0], {"order_id": "ORD-1"})
    assert result.ok is False
    assert result.data["reason"] == "blocked"
    assert "loopback" in result.data["detail"]
    assert state.calls == []


async def test_in_a_call_the_filler_is_said_and_the_answer_uses_the_result(
    upstream: tuple[Running, Upstream],
) -> None:
    running, state = upstream
    with ScriptedLLM() as llm:
        llm.push(
            Reply(tool_calls=[tool_call("orders_lookup", {"order_id": "ORD-9"})]),
            text("Your order ORD-9 has shipped."),
        )
        agent = load_agent(
            {
                "llm": {"model": "scripted", "base_url": llm.base_url, "max_retries": 0},
                "functions": [entry(running.url, filler="Let me look.")],
            },
            egress=LOCAL,
        )
        async with (
            Executor(allow_private_network=True) as ex,
            CallSession(agent, executor=ex, context=CallContext(call_sid="CA-5")) as call,
        ):
            events = [ev async for ev in call.turn("Where is ORD-9?")]
        second = llm.requests[1]
    fillers = [ev.text for ev in events if isinstance(ev, Filler)]
    finished = [ev for ev in events if isinstance(ev, FunctionFinished)]
    assert fillers == ["Let me look."]
    assert len(finished) == 1
    assert finished[0].result.ok
    tool_message = next(m for m in second["messages"] if m["role"] == "tool")
    assert json.loads(tool_message["content"])["status"] == "shipped"
    assert state.calls[0]["meta"]["voicefn/call_id"] == "CA-5"


async def test_a_protocol_error_is_a_result_and_the_next_call_starts_afresh(
    upstream: tuple[Running, Upstream],
) -> None:
    running, state = upstream
    agent = load_agent({"functions": [entry(running.url)]}, egress=LOCAL)
    picture = agent.function("picture")
    assert picture is not None
    assert isinstance(picture.action, McpAction)
    gone = picture.model_copy(
        update={"name": "gone", "action": picture.action.model_copy(update={"tool": "gone"})}
    )
    async with Executor(allow_private_network=True) as ex:
        failed = await ex.run(gone, {})
        assert len(ex.mcp) == 0  # the session it failed on is not reused
        ok = await ex.run(picture, {})
        assert len(ex.mcp) == 1
    assert failed.data["reason"] == "mcp_error"
    assert "gone" in failed.data["detail"]
    assert ok.ok
    assert [c["name"] for c in state.calls] == ["gone", "picture"]


def test_voicefn_call_reaches_a_loopback_mcp_server_with_its_own_egress_option(
    upstream: tuple[Running, Upstream], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``voicefn call --allow-private-network`` applies while the agent loads (lists the MCP
    server's tools), not only while it runs: no environment variable needed."""
    from typer.testing import CliRunner

    from voicefn.cli import app

    monkeypatch.delenv("VOICEFN_ALLOW_PRIVATE_NETWORK", raising=False)
    running, state = upstream
    agent = tmp_path / "agent.json"
    agent.write_text(
        json.dumps({"name": "a", "system_prompt": "Help.", "functions": [entry(running.url)]})
    )
    script = tmp_path / "llm.json"
    script.write_text(
        json.dumps(
            [
                {"tool_calls": [{"name": "orders_lookup", "arguments": {"order_id": "ORD-7"}}]},
                "It has shipped.",
            ]
        )
    )
    runner = CliRunner()
    refused = runner.invoke(app, ["call", str(agent), "--llm-script", str(script), "--json"])
    assert refused.exit_code == 1
    assert "loopback" in refused.stdout
    ok = runner.invoke(
        app,
        ["call", str(agent), "--llm-script", str(script), "--json", "--allow-private-network"],
        input="where is ORD-7?\n",
    )
    assert ok.exit_code == 0, ok.stdout
    assert [c["arguments"]["order_id"] for c in state.calls] == ["ORD-7"]
