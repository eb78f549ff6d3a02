"""Agents: CRUD with the engine's path/found/fix problems, import/export of the agent file."""

from __future__ import annotations

from typing import Any

import httpx
import yaml
from api_helpers import create_agent, echo_function

import voicefn


def test_agent_crud(api: httpx.Client) -> None:
    created = api.post(
        "/v1/agents",
        json={
            "name": "store-agent",
            "system_prompt": "You are Sam, speaking to {customer_name}.",
            "welcome_message": "Hi {customer_name}!",
            "language": "hi",
            "variables": {"customer_name": "there"},
            "webhook_url": "https://hooks.example.com/x",
            "llm": {"model": "gpt-4o-mini", "temperature": 0.3},
        },
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["id"].startswith("agent_")
    assert agent["language"] == "hi"
    url = f"/v1/agents/{agent['id']}"
    patched = api.patch(url, json={"llm": {"temperature": 0.5}, "welcome_message": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["llm"]["temperature"] == 0.5
    assert patched.json()["llm"]["model"] == "gpt-4o-mini"  # merged, not replaced
    assert patched.json()["welcome_message"] is None
    assert api.get(url).json()["system_prompt"].startswith("You are Sam")
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


def test_agent_problems_have_path_found_and_fix_and_change_nothing(api: httpx.Client) -> None:
    create_agent(api, "agent_a")
    bad = api.patch(
        "/v1/agents/agent_a",
        json={"system_promt": "typo", "llm": {"temperature": 7}},
    )
    assert bad.status_code == 422
    problems = {p["path"]: p for p in bad.json()["problems"]}
    assert "system_prompt" in problems["$.system_promt"]["fix"]
    assert problems["$.llm.temperature"]["found"] == 7
    assert api.get("/v1/agents/agent_a").json()["system_prompt"] == "You help callers."
    paths = api.post("/v1/agents", json={"name": "x", "functions": ["functions/a.json"]})
    assert paths.status_code == 422
    assert paths.json()["problems"][0]["path"] == "$.functions[0]"
    taken = api.post("/v1/agents", json={"name": "agent_a"})
    assert taken.status_code == 422
    assert taken.json()["problems"][0]["path"] == "$.name"


def test_agents_are_listed_with_a_cursor(api: httpx.Client) -> None:
    for i in range(5):
        create_agent(api, f"agent_{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/agents", params=params).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"agent_{i}" for i in range(5)]
    assert api.get("/v1/agents", params={"cursor": "bm9wZQ"}).status_code == 422


def test_import_then_export_is_the_file_voicefn_call_reads(
    api: httpx.Client, server: Any, tmp_path: Any
) -> None:
    doc = {
        "name": "store-agent",
        "system_prompt": "You help {customer_name}.",
        "variables": {"customer_name": "there"},
        "functions": [
            echo_function(server.url, "check_order"),
            {
                "name": "end_call",
                "description": "End the call when the caller says goodbye.",
                "action": {"type": "builtin", "builtin": "end_call", "message": "Bye!"},
            },
        ],
    }
    first = api.post("/v1/agents/import", json=doc)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["created"] is True
    assert [(f["name"], f["change"]) for f in body["functions"]] == [
        ("check_order", "created"),
        ("end_call", "created"),
    ]
    agent_id = body["agent"]["id"]
    again = api.post("/v1/agents/import", json=doc).json()
    assert again["created"] is False
    assert {f["change"] for f in again["functions"]} == {"unchanged"}
    changed = {
        **doc,
        "functions": [echo_function(server.url, "check_order", timeout_ms=2000)],
    }
    third = api.post(
        "/v1/agents/import",
        content=yaml.safe_dump(changed),
        headers={"Content-Type": "application/yaml"},
    ).json()
    assert [(f["name"], f["change"], f["version"]) for f in third["functions"]] == [
        ("check_order", "updated", 2),
        ("end_call", "deleted", 2),
    ]
    exported = api.get(f"/v1/agents/{agent_id}/export")
    assert exported.headers["content-type"].startswith("application/yaml")
    path = tmp_path / "agent.yaml"
    path.write_text(exported.text)
    agent = voicefn.load_agent(path)
    assert agent.name == "store-agent"
    assert [f.name for f in agent.functions] == ["check_order"]
    assert agent.functions[0].http.timeout_ms == 2000
    as_json = api.get(f"/v1/agents/{agent_id}/export", params={"format": "json"}).json()
    assert as_json["variables"] == {"customer_name": "there"}


def test_an_import_with_one_bad_function_changes_nothing(api: httpx.Client, server: Any) -> None:
    good = echo_function(server.url, "check_order")
    bad = {**echo_function(server.url, "broken"), "action": {"type": "http", "url": "ftp://x"}}
    response = api.post("/v1/agents/import", json={"name": "a", "functions": [good, bad]})
    assert response.status_code == 422
    assert all(p["path"].startswith("$.functions[1]") for p in response.json()["problems"])
    assert api.get("/v1/agents").json()["data"] == []


def test_the_api_never_asks_an_mcp_server_for_its_tools(api: httpx.Client, server: Any) -> None:
    """An {mcp: ...} entry would make the service connect (or start a command) while validating a
    tenant's document: refused with a problem, and nothing reaches the named server."""
    before = len(server.received)
    response = api.post(
        "/v1/agents/import",
        json={"name": "a", "functions": [{"mcp": {"url": f"{server.url}/mcp"}}]},
    )
    assert response.status_code == 422
    assert response.json()["problems"][0]["path"] == "$.functions[0].mcp"
    assert len(server.received) == before
