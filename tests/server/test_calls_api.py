"""Calls on the platform: a host reports a finished call, the post-call work runs as jobs (the
service's own worker, the shipped ScriptedLLM for the extraction, a real loopback receiver for
the post-call function and the agent webhook), and the call is browsable with its transcript,
executions, extraction, jobs and their attempts. Waits poll for an outcome; none is a timing
claim."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from api_helpers import echo_function, wait_until
from live import Live, live_server

from voicefn.jobs.settings import JobSettings
from voicefn.runtime.postcall_record import EXECUTION_RECORD_SCHEMA
from voicefn.server import EgressDefaults, ServerConfig
from voicefn.testing import ScriptedLLM, error_reply, text
from voicefn.webhooks import verify

SECRET = "crm-secret-value-123"
ANSWER = {"email": "ana@example.com", "reason": "shipping", "summary": "Ana asked about ORD-9."}


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    config = ServerConfig(
        data_dir=tmp_path / "data",
        database_url=db_url,
        egress=EgressDefaults(allow_private_network=True),
        change_poll_s=0.05,
        jobs=JobSettings(max_attempts=5, base_delay_s=0.01, max_delay_s=0.05, poll_s=0.05),
    )
    with live_server(config) as served:
        yield served


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as scripted:
        yield scripted


def crm(url: str, **mapping: Any) -> dict[str, Any]:
    return {
        "name": "update_crm",
        "phase": "post_call",
        "parameters": {
            "type": "object",
            "properties": {
                "phone": {"type": "string"},
                "email": {"type": "string"},
                "status": {"type": "string"},
                "token": {"type": "string"},
            },
            "required": ["phone"],
        },
        "mapping": mapping
        or {
            "phone": "call.from_number",
            "email": "post_call.email",
            "status": "variables.order_status",
            "token": "variables.crm_token",
        },
        "action": {"type": "http", "method": "POST", "url": f"{url}/echo"},
    }


def agent_doc(llm: ScriptedLLM, server_url: str, *functions: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "calls-agent",
        "system_prompt": "You help {customer_name}.",
        "variables": {"customer_name": "Ana", "crm_token": SECRET},
        "webhook_url": f"{server_url}/echo?to=webhook",
        "llm": {"model": "scripted", "base_url": llm.base_url, "max_retries": 0},
        "post_call_variables": [
            {"name": "email", "type": "string", "description": "The caller's email"},
            {
                "name": "reason",
                "type": "enum",
                "values": ["billing", "shipping"],
                "description": "Why they called",
                "required": True,
            },
        ],
        "post_call": {"summary": True},
        "functions": list(functions),
    }


REPORT = {
    "call_sid": "CA-100",
    "from_number": "+15550100",
    "to_number": "+15550199",
    "started_at": "2026-12-01T10:00:00Z",
    "ended_at": "2026-12-01T10:02:30Z",
    "ended_by": "caller",
    "variables": {"order_status": "shipped"},
    "transcript": [
        {"role": "agent", "text": "Hi Ana, how can I help?"},
        {"role": "caller", "text": "Where is ORD-9? I'm ana@example.com"},
    ],
    "executions": [
        {
            "function": "check_order",
            "tool_call_id": "call_1",
            "arguments": {"order_id": "ORD-9"},
            "ok": True,
            "status": 200,
            "latency_ms": 12.5,
            "stored": {"order_status": "shipped"},
        }
    ],
}


def settled(api: httpx.Client, call_id: str, jobs: int) -> dict[str, Any] | None:
    detail: dict[str, Any] = api.get(f"/v1/calls/{call_id}").json()
    states = [j["state"] for j in detail["jobs"]]
    if len(states) == jobs and all(s in ("succeeded", "dead") for s in states):
        return detail
    return None


def test_a_reported_call_is_extracted_mapped_and_delivered(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    with live.client() as api:
        agent = api.post("/v1/agents", json=agent_doc(llm, server.url, crm(server.url))).json()
        assert agent["post_call_variables"][1]["values"] == ["billing", "shipping"]
        signing = api.post("/v1/signing-keys", json={"agent_id": agent["id"]}).json()
        llm.push(text(json.dumps(ANSWER)))
        reported = api.post(f"/v1/agents/{agent['id']}/calls", json=REPORT)
        assert reported.status_code == 202, reported.text
        body = reported.json()
        assert body["created"] is True
        call_id = body["call"]["id"]
        assert [(j["kind"], j["name"]) for j in body["jobs"]] == [("task", "post_call")]
        detail = wait_until(lambda: settled(api, call_id, 3), "the post-call jobs")
        again = api.post(f"/v1/agents/{agent['id']}/calls", json=REPORT)
        listed = api.get("/v1/calls", params={"agent_id": agent["id"]}).json()
    jobs = {j["name"]: j for j in detail["jobs"]}
    assert detail["jobs"][0]["name"] == "post_call"  # first: the others follow from it
    assert {n: j["state"] for n, j in jobs.items()} == {
        "post_call": "succeeded",
        "update_crm": "succeeded",
        "agent_webhook": "succeeded",
    }
    assert all(j["attempt_log"][-1]["outcome"] == "ok" for j in detail["jobs"])
    assert detail["extraction"]["values"] == ANSWER
    assert detail["summary"] == "Ana asked about ORD-9."
    assert detail["variables"]["crm_token"] == "[secret]"
    assert detail["duration_s"] == 150.0
    assert detail["executions"][0]["stored"] == {"order_status": "shipped"}
    # the CRM got the mapped values, the secret variable's real value among them
    crm_request = next(r for r in server.received if r.path == "/echo" and not r.query)
    assert crm_request.json == {
        "phone": "+15550100",
        "email": "ana@example.com",
        "status": "shipped",
        "token": SECRET,
    }
    crm_job = jobs["update_crm"]
    assert crm_request.headers["Idempotency-Key"] == crm_job["id"]
    # the agent webhook got the execution record, signed with the agent's key
    hook = next(r for r in server.received if r.query.get("to") == ["webhook"])
    verify(hook.headers, hook.body, signing["secret"])
    record = hook.json
    jsonschema.validate(record, EXECUTION_RECORD_SCHEMA)
    assert record["call_id"] == "CA-100"
    assert record["summary"] == "Ana asked about ORD-9."
    assert record["extracted_variables"] == {"email": "ana@example.com", "reason": "shipping"}
    assert record["post_call"] == [{"function": "update_crm", "state": "queued"}]
    assert record["context_details"]["variables"]["crm_token"] == "[secret]"
    assert SECRET not in hook.text
    assert record["executions"][0]["latency_ms"] == 12.5
    # the record as it stands now knows the function succeeded
    assert detail["record"]["post_call"][0]["state"] == "succeeded"
    jsonschema.validate(detail["record"], EXECUTION_RECORD_SCHEMA)
    # a repeated report finds the first one and queues nothing new
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["call"]["id"] == call_id
    assert len(again.json()["jobs"]) == 3
    assert len(llm.requests) == 1
    assert [c["id"] for c in listed["data"]] == [call_id]
    assert listed["data"][0]["extracted"] is True


def test_without_executions_the_recorded_ones_are_used_and_their_store_applied(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    lookup = echo_function(server.url)
    lookup["store"] = {"order_ref": "json.order_id"}
    post = crm(server.url, phone="call.from_number", status="variables.order_ref")
    doc = agent_doc(llm, server.url, lookup, post)
    doc["post_call_variables"] = []
    doc["post_call"] = {}
    del doc["webhook_url"]
    with live.client() as api:
        agent = api.post("/v1/agents", json=doc).json()
        run = api.post(
            f"/v1/agents/{agent['id']}/functions/check_order/execute",
            json={"arguments": {"order_id": "ORD-7"}, "context": {"call_sid": "CA-7"}},
        ).json()
        assert run["ok"] is True
        report = {k: v for k, v in REPORT.items() if k not in ("executions", "variables")}
        body = api.post(
            f"/v1/agents/{agent['id']}/calls", json={**report, "call_sid": "CA-7"}
        ).json()
        detail = wait_until(lambda: settled(api, body["call"]["id"], 2), "the post-call jobs")
    (execution,) = detail["executions"]
    assert execution["function"] == "check_order"
    assert execution["ok"] is True
    assert execution["stored"] == {"order_ref": "ORD-7"}
    assert detail["variables"]["order_ref"] == "ORD-7"
    assert detail["extraction"] is None  # nothing to extract: no LLM request
    assert server.received[-1].json == {"phone": "+15550100", "status": "ORD-7"}
    assert llm.requests == []


def test_a_failing_extraction_is_retried_then_the_rest_goes_on(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    needs = crm(server.url, phone="call.from_number", email="post_call.reason")
    needs["name"] = "needs_reason"
    needs["parameters"]["required"] = ["phone", "email"]
    free = crm(server.url, phone="call.from_number")
    free["name"] = "no_extraction_needed"
    llm.push(*(error_reply(503, "model overloaded") for _ in range(3)))
    with live.client() as api:
        agent = api.post("/v1/agents", json=agent_doc(llm, server.url, needs, free)).json()
        body = api.post(f"/v1/agents/{agent['id']}/calls", json=REPORT).json()
        detail = wait_until(lambda: settled(api, body["call"]["id"], 3), "the post-call jobs")
    task = detail["jobs"][0]
    assert task["attempts"] == 3
    assert [a["outcome"] for a in task["attempt_log"]] == ["retry", "retry", "ok"]
    assert "503" in detail["extraction"]["error"]
    assert detail["extraction"]["fields"]["reason"]["status"] == "missing"
    assert sorted(j["name"] for j in detail["jobs"][1:]) == [
        "agent_webhook",
        "no_extraction_needed",
    ]
    assert task["result"]["skipped"] == [{"function": "needs_reason", "missing": ["email"]}]
    hook = next(r for r in server.received if r.query.get("to") == ["webhook"])
    assert hook.json["post_call"] == [
        {"function": "needs_reason", "state": "skipped"},
        {"function": "no_extraction_needed", "state": "queued"},
    ]
    assert hook.json["extraction"]["ok"] is False
    states = {p["function"]: p["state"] for p in detail["record"]["post_call"]}
    assert states == {"needs_reason": "skipped", "no_extraction_needed": "succeeded"}
    assert len(llm.requests) == 3


def test_reports_are_validated_and_other_agents_calls_are_not_found(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    with live.client() as api:
        agent = api.post("/v1/agents", json=agent_doc(llm, server.url)).json()
        backwards = api.post(
            f"/v1/agents/{agent['id']}/calls",
            json={**REPORT, "ended_at": "2026-12-01T09:00:00Z"},
        )
        nameless = api.post(
            f"/v1/agents/{agent['id']}/calls",
            json={k: v for k, v in REPORT.items() if k != "call_sid"},
        )
        unknown = api.post("/v1/agents/agent_nope/calls", json=REPORT)
        nul = api.post(
            f"/v1/agents/{agent['id']}/calls",
            json={**REPORT, "transcript": [{"role": "caller", "text": "a\u0000b"}]},
        )
        missing = api.get("/v1/calls/call_0123456789abcdef")
        empty = api.get("/v1/calls").json()
    assert backwards.status_code == 422
    assert "ended_at is before started_at" in backwards.text
    assert nameless.status_code == 422
    assert "give call_sid" in nameless.text
    assert unknown.status_code == 404
    assert nul.status_code == 422
    assert nul.json()["problems"][0]["path"] == "$.transcript[0].text"
    assert missing.status_code == 404
    assert empty == {"data": [], "next_cursor": None}


def test_agents_and_functions_refuse_bad_mappings_with_paths(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    bad = crm(server.url, phone="call.from_number", email="post_call.emial")
    with live.client() as api:
        refused = api.post("/v1/agents", json=agent_doc(llm, server.url, bad))
        agent = api.post("/v1/agents", json=agent_doc(llm, server.url)).json()
        one = api.post(f"/v1/agents/{agent['id']}/functions", json=bad)
        good = api.post(f"/v1/agents/{agent['id']}/functions", json=crm(server.url))
        exported = api.get(f"/v1/agents/{agent['id']}/export", params={"format": "json"}).json()
    assert refused.status_code == 422
    problem = next(p for p in refused.json()["problems"] if "mapping" in p["path"])
    assert problem["path"] == "$.functions[0].mapping.email"
    assert problem["fix"] == "did you mean post_call.email?"
    assert one.status_code == 422
    assert [p["path"] for p in one.json()["problems"]] == ["$.mapping.email"]
    assert good.status_code == 201, good.text
    assert exported["post_call"] == {"summary": True, "outcome": False}
    assert exported["functions"][0]["mapping"]["email"] == "post_call.email"


def test_the_execution_record_schema_is_served_to_anyone(live: Live) -> None:
    response = httpx.get(f"{live.url}/v1/schemas/execution-record.json")
    assert response.status_code == 200
    assert response.json() == EXECUTION_RECORD_SCHEMA
    jsonschema.Draft202012Validator.check_schema(response.json())


def test_the_extraction_never_sends_the_servers_keys_to_a_tenants_llm(
    live: Live, llm: ScriptedLLM, server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-own-key")
    monkeypatch.setenv("VOICEFN_TEST_SERVER_SECRET", "server-secret-in-env")
    doc = agent_doc(llm, server.url)
    doc["llm"]["api_key_env"] = "VOICEFN_TEST_SERVER_SECRET"
    llm.push(text(json.dumps(ANSWER)))
    with live.client() as api:
        agent = api.post("/v1/agents", json=doc).json()
        body = api.post(f"/v1/agents/{agent['id']}/calls", json=REPORT).json()
        detail = wait_until(lambda: settled(api, body["call"]["id"], 2), "the post-call jobs")
    assert detail["extraction"]["values"] == ANSWER
    (headers,) = llm.request_headers
    assert "authorization" not in headers
    assert "server-secret-in-env" not in json.dumps(headers)


def test_an_llm_url_the_workspace_may_not_reach_is_not_asked(
    live: Live, llm: ScriptedLLM, server: Any
) -> None:
    with live.client() as api:
        ws = api.get("/v1/workspace").json()["id"]
        agent = api.post("/v1/agents", json=agent_doc(llm, server.url)).json()
        closed = api.put(f"/v1/workspaces/{ws}/settings", json={"allow_private_network": False})
        assert closed.status_code == 200, closed.text
        body = api.post(f"/v1/agents/{agent['id']}/calls", json=REPORT).json()
        detail = wait_until(lambda: settled(api, body["call"]["id"], 2), "the post-call jobs")
    task = detail["jobs"][0]
    assert task["state"] == "succeeded"
    assert task["attempts"] == 1  # a refused URL is not asked again
    assert "egress" in detail["extraction"]["error"]
    assert llm.requests == []
