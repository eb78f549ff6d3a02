"""The execute path and the test route: the engine's ToolResult, the workspace's egress policy,
context variables, builtins, the version each run records, and the LLM-facing tools."""

from __future__ import annotations

from typing import Any

import httpx
from api_helpers import create_agent, echo_function
from live import Live

EXECUTE = "/v1/agents/agent_abc123/functions/{}/execute"


def _lookup(url: str) -> dict[str, Any]:
    """A function with a parameter the call context fills (customer_id)."""
    doc = echo_function(url, "lookup")
    doc["parameters"]["properties"]["customer_id"] = {"type": "string", "description": "who"}
    doc["parameters"]["required"] = ["order_id", "customer_id"]
    doc["action"]["param"] = {"order_id": "%(order_id)s", "customer_id": "%(customer_id)s"}
    return doc


def test_execute_returns_the_tool_result_and_records_the_version(
    api: httpx.Client, server: Any
) -> None:
    create_agent(api, language="hi")
    fid = api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()["id"]
    first = api.post(
        EXECUTE.format("check_order"),
        json={
            "arguments": '{"order_id": "ORD-1"}',
            "context": {"call_sid": "CA1", "from_number": "+15550100"},
            "tool_call_id": "call_1",
        },
    )
    assert first.status_code == 200, first.text
    result = first.json()
    assert result["ok"] is True
    assert result["status"] == 200
    assert result["version"] == 1
    assert result["filler"] == "Ek minute."  # the agent's language
    assert '"order_id": "ORD-1"' in result["content"]
    arrived = server.received[-1]
    assert arrived.json == {"order_id": "ORD-1"}
    assert arrived.headers["X-Voicefn-Call-Id"] == "CA1"
    assert arrived.headers["X-Voicefn-Agent-Id"] == "agent_abc123"

    api.patch(
        f"/v1/agents/agent_abc123/functions/{fid}",
        params={"dialect": "voicefn"},
        json={"action": {"param": {"order_id": "%(order_id)s", "v": 2}}},
    )
    second = api.post(
        EXECUTE.format("check_order"),
        json={"arguments": {"order_id": "ORD-2"}, "context": {"language": "en"}},
    ).json()
    assert second["version"] == 2
    assert second["filler"] == "Let me check."
    assert server.received[-1].json == {"order_id": "ORD-2", "v": 2}

    listed = api.get("/v1/executions", params={"function_id": fid}).json()["data"]
    assert [(e["version"], e["source"], e["ok"]) for e in listed] == [
        (2, "execute", True),
        (1, "execute", True),
    ]
    detail = api.get(f"/v1/executions/{first.json()['execution_id']}").json()
    assert detail["call_sid"] == "CA1"
    assert detail["tool_call_id"] == "call_1"
    assert detail["arguments"] == {"order_id": "ORD-1"}
    assert detail["request"]["method"] == "POST"
    assert detail["request"]["url"] == f"{server.url}/echo"


def test_failures_are_results_not_http_errors(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    down = echo_function(server.url, "down")
    down["action"]["url"] = f"{server.url}/status/503"
    api.post("/v1/agents/agent_abc123/functions", json=down)
    before = len(server.received)
    missing = api.post(EXECUTE.format("check_order"), json={"arguments": {}}).json()
    assert missing["ok"] is False
    assert missing["error"] == "missing_arguments"
    assert len(server.received) == before  # nothing was sent
    failed = api.post(EXECUTE.format("down"), json={"arguments": {"order_id": "1"}})
    assert failed.status_code == 200
    assert failed.json()["error"] == "request_failed"
    assert failed.json()["status"] == 503
    errors = api.get("/v1/executions", params={"status": "error"}).json()["data"]
    assert {e["error"] for e in errors} == {"missing_arguments", "request_failed"}
    by_code = api.get("/v1/executions", params={"status": "request_failed"}).json()["data"]
    assert [e["function"] for e in by_code] == ["down"]


def test_unknown_names_are_404s_that_list_the_real_ones(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    unknown = api.post(EXECUTE.format("check_orders"), json={"arguments": {}})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "unknown_function"
    assert unknown.json()["functions"] == ["check_order"]
    assert "check_order" in unknown.json()["content"]
    no_agent = api.post(
        "/v1/agents/agent_nobody/functions/check_order/execute", json={"arguments": {}}
    )
    assert no_agent.status_code == 404
    assert "functions" not in no_agent.json()


def test_context_variables_fill_parameters_the_llm_never_sees(
    api: httpx.Client, server: Any
) -> None:
    create_agent(api, variables={"customer_id": "C-default"})
    api.post("/v1/agents/agent_abc123/functions", json=_lookup(server.url))
    tools = api.get("/v1/agents/agent_abc123/tools", params={"format": "openai"}).json()
    params = tools["tools"][0]["function"]["parameters"]
    assert set(params["properties"]) == {"order_id"}
    assert params["required"] == ["order_id"]
    for fmt, key in (("anthropic", "input_schema"), ("gemini", "parameters")):
        schema = api.get("/v1/agents/agent_abc123/tools", params={"format": fmt}).json()
        assert "customer_id" not in str(schema["tools"][0][key])
    result = api.post(
        EXECUTE.format("lookup"),
        json={
            "arguments": {"order_id": "1", "customer_id": "C-evil"},
            "context": {"variables": {"customer_id": "C-42"}},
        },
    ).json()
    assert result["ok"] is True
    assert server.received[-1].json == {"order_id": "1", "customer_id": "C-42"}


def test_builtins_return_a_directive(api: httpx.Client) -> None:
    create_agent(api)
    api.post(
        "/v1/agents/agent_abc123/functions",
        json={
            "name": "end_call",
            "description": "End the call when the caller says goodbye.",
            "action": {"type": "builtin", "builtin": "end_call", "message": "Goodbye!"},
        },
    )
    result = api.post(EXECUTE.format("end_call"), json={}).json()
    assert result["ok"] is True
    assert result["directive"] == {"builtin": "end_call", "message": "Goodbye!"}


def test_the_workspace_egress_policy_applies(live: Live, api: httpx.Client, server: Any) -> None:
    create_agent(api)
    fid = api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()["id"]
    ws = api.get("/v1/workspace").json()["id"]
    assert api.get("/v1/settings").json()["effective"]["allow_private_network"] is True
    closed = api.put(f"/v1/workspaces/{ws}/settings", json={"allow_private_network": False})
    assert closed.status_code == 200, closed.text
    before = len(server.received)
    blocked = api.post(EXECUTE.format("check_order"), json={"arguments": {"order_id": "1"}})
    assert blocked.json()["ok"] is False
    assert blocked.json()["data"]["reason"] == "blocked"
    tested = api.post(
        f"/v1/agents/agent_abc123/functions/{fid}/test", json={"arguments": {"order_id": "1"}}
    ).json()
    assert tested["data"]["reason"] == "blocked"
    assert len(server.received) == before
    allowed = api.put(f"/v1/workspaces/{ws}/settings", json={"allow": ["127.0.0.1"]})
    assert allowed.json()["effective"]["allow"] == ["127.0.0.1"]
    ok = api.post(EXECUTE.format("check_order"), json={"arguments": {"order_id": "1"}}).json()
    assert ok["ok"] is True
    bad = api.put(f"/v1/workspaces/{ws}/settings", json={"allow": ["not a host!"]})
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["path"] == "$.allow[0]"
    assert api.get("/v1/settings").json()["settings"]["allow"] == ["127.0.0.1"]


def test_the_test_route_shows_the_request_sent_and_is_recorded(
    api: httpx.Client, server: Any
) -> None:
    create_agent(api)
    doc = echo_function(server.url, api_token="Bearer tok_1234567890")
    fid = api.post("/v1/agents/agent_abc123/functions", json=doc).json()["id"]
    tested = api.post(
        f"/v1/agents/agent_abc123/functions/{fid}/test",
        json={"arguments": {"order_id": "ORD-9"}, "context": {"variables": {"x": "1"}}},
    )
    assert tested.status_code == 200, tested.text
    body = tested.json()
    assert body["ok"] is True
    assert body["request"]["headers"]["Authorization"] == "[redacted]"
    assert body["request"]["body"] == {"order_id": "ORD-9"}
    assert body["arguments"] == {"order_id": "ORD-9"}
    assert body["timings"]["total_ms"] > 0
    assert server.received[-1].headers["Authorization"] == "Bearer tok_1234567890"
    recorded = api.get("/v1/executions", params={"source": "test"}).json()["data"]
    assert [e["id"] for e in recorded] == [body["execution_id"]]


def test_values_a_database_refuses_are_recorded_cleaned(api: httpx.Client, server: Any) -> None:
    """JSON may carry a NUL, a lone surrogate or a 100-digit integer; PostgreSQL text may not.
    The run is answered and recorded all the same (cleaned, off the hot path)."""
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    raw = '{"order_id": "A\\ud800\\u0000B", "extra": ' + "9" * 100 + "}"
    response = api.post(
        EXECUTE.format("check_order"), json={"arguments": raw, "context": {"call_sid": "CA-1"}}
    )
    assert response.status_code == 200, response.text
    execution_id = response.json()["execution_id"]
    detail = api.get(f"/v1/executions/{execution_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["arguments"]["order_id"] == "A?\ufffdB"


WARM_TABLES = ("agents", "functions", "api_keys", "workspace_settings", "executions")


def test_a_warm_execute_path_never_waits_for_the_database(
    api: httpx.Client, server: Any, db_url: str
) -> None:
    """With the tables it would read (and the one it records into) renamed away, a warm execute
    still runs: lookups come from the per-version cache, the recording waits in the journal."""
    from api_helpers import database_execute

    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    warm = api.post(EXECUTE.format("check_order"), json={"arguments": {"order_id": "1"}})
    assert warm.json()["ok"] is True
    url = db_url.replace("+asyncpg", "")
    for table in WARM_TABLES:
        database_execute(url, f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        hot = api.post(EXECUTE.format("check_order"), json={"arguments": {"order_id": "2"}})
        assert hot.status_code == 200, hot.text
        assert hot.json()["ok"] is True
        assert server.received[-1].json == {"order_id": "2"}
    finally:
        for table in WARM_TABLES:
            database_execute(url, f"ALTER TABLE {table}_away RENAME TO {table}")
    listed = {e["id"] for e in api.get("/v1/executions").json()["data"]}
    assert {warm.json()["execution_id"], hot.json()["execution_id"]} <= listed


def test_the_fast_path_and_fastapi_give_the_same_answers(api: httpx.Client, server: Any) -> None:
    """Well-formed requests are answered without FastAPI's routing; anything else falls through
    to FastAPI (the body replayed), which answers the usual way."""
    create_agent(api)
    api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url))
    url = EXECUTE.format("check_order")
    fast = api.post(url, json={"arguments": {"order_id": "1"}})
    padded = b'{"arguments": {"order_id": "1"}' + b" " * (1 << 20) + b"}"  # over the fast limit
    slow = api.post(url, content=padded, headers={"Content-Type": "application/json"})
    assert fast.status_code == slow.status_code == 200
    keys = ("ok", "status", "version", "filler", "function", "error")
    assert {k: fast.json()[k] for k in keys} == {k: slow.json()[k] for k in keys}
    assert server.received[-1].json == server.received[-2].json == {"order_id": "1"}
    bad = api.post(url, json={"arguments": 5, "extra": True})
    assert bad.status_code == 422
    assert {p["path"] for p in bad.json()["problems"]} >= {"$.arguments", "$.extra"}
    no_key = httpx.post(api.base_url.join(url), json={"arguments": {}})
    assert no_key.status_code == 401


def test_mcp_functions_never_start_commands_on_the_server(
    api: httpx.Client, tmp_path: Any, monkeypatch: Any
) -> None:
    """A tenant's MCP function naming a command must not run it on the host, even when the
    operator's environment allows commands for the CLI."""
    monkeypatch.setenv("VOICEFN_ALLOW_MCP_COMMANDS", "1")
    marker = tmp_path / "ran"
    create_agent(api)
    created = api.post(
        "/v1/agents/agent_abc123/functions",
        json={
            "name": "local_tool",
            "description": "A tool on a local MCP server.",
            "action": {"type": "mcp", "tool": "x", "command": "touch", "args": [str(marker)]},
        },
    )
    assert created.status_code == 201, created.text
    result = api.post(EXECUTE.format("local_tool"), json={"arguments": {}}).json()
    assert result["ok"] is False
    assert not marker.exists()
