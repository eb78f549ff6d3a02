"""Functions under an agent: Call2Me's routes, any dialect in and out, 422 problems in the
caller's dialect (and nothing changed), versions and restore."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import httpx
import pytest
from api_helpers import create_agent, echo_function
from live import Live

# Seed 004 (Call2Me's docs), verbatim but for the host and the key.
SEED_004_CURL = """curl -X POST https://api.call2me.app/v1/agents/agent_abc123/functions \\
-H "Authorization: Bearer YOUR_API_KEY" \\
-H "Content-Type: application/json" \\
-d '{
"name": "get_order_status",
"description": "Look up the shipping status of an e-commerce order by ID.",
"url": "https://your-api.com/order-status",
"method": "POST",
"parameters": {
"type": "object",
"properties": {
"order_id": {
"type": "string",
"description": "The order number, digits only"
}
},
"required": ["order_id"]
},
"speak_during_execution": "Let me check that for you...",
"timeout_ms": 4000
}'"""

BOLNA = {
    "name": "check_order_status",
    "description": "Use this function when the customer asks about their order status.",
    "pre_call_message": "Let me check the status of your order.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "The order ID"}},
        "required": ["order_id"],
    },
    "key": "custom_task",
    "value": {
        "method": "GET",
        "url": "https://api.example.com/orders",
        "param": {"order_id": "%(order_id)s"},
        "headers": {},
    },
}


def _functions(api: httpx.Client, agent: str = "agent_abc123") -> list[dict[str, Any]]:
    response = api.get(f"/v1/agents/{agent}/functions")
    assert response.status_code == 200
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@pytest.mark.skipif(shutil.which("curl") is None, reason="the curl program is not installed")
def test_seed_004_curl_example_works_unchanged(live: Live, api: httpx.Client) -> None:
    create_agent(api, "agent_abc123")
    command = SEED_004_CURL.replace("https://api.call2me.app", live.url).replace(
        "YOUR_API_KEY", live.key
    )
    done = subprocess.run(
        ["bash", "-c", command + " --silent --show-error --write-out '\\n%{http_code}'"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "201", body
    created = json.loads(body)
    assert created["name"] == "get_order_status"
    assert created["source_dialect"] == "call2me"
    assert created["version"] == 1
    assert created["function"]["filler"] == "Let me check that for you..."
    assert created["function"]["action"]["timeout_ms"] == 4000
    back = api.get(
        f"/v1/agents/agent_abc123/functions/{created['id']}", params={"dialect": "call2me"}
    ).json()["function"]
    sent = json.loads(command.split("-d '", 1)[1].rsplit("'", 1)[0])
    assert back == sent


def test_any_dialect_in_and_out(api: httpx.Client) -> None:
    create_agent(api)
    created = api.post("/v1/agents/agent_abc123/functions", json=BOLNA)
    assert created.status_code == 201, created.text
    fid = created.json()["id"]
    url = f"/v1/agents/agent_abc123/functions/{fid}"
    assert api.get(url, params={"dialect": "bolna"}).json()["function"] == BOLNA
    canonical = api.get(url).json()
    assert canonical["dialect"] == "voicefn"
    assert canonical["function"]["action"]["param"] == {"order_id": "%(order_id)s"}
    openai = api.get(url, params={"dialect": "openai"}).json()["function"]
    assert openai["type"] == "function"
    assert "url" not in json.dumps(openai)
    call2me = api.get(url, params={"dialect": "call2me"}).json()
    assert call2me["lost"], "call2me cannot carry Bolna's param template: it says so"
    callkaro = {
        "name": "book_slot",
        "description": "Book a slot when the caller wants an appointment.",
        "api_url": "https://api.example.com/book",
        "method": "POST",
        "parameters": [
            {"key": "date", "type": "string", "description": "YYYY-MM-DD", "required": True}
        ],
    }
    named = api.post(
        "/v1/agents/agent_abc123/functions", params={"dialect": "callkaro"}, json=callkaro
    )
    assert named.status_code == 201, named.text
    answered = named.json()["function"]  # answered in the dialect it was named in
    assert answered["api_url"] == callkaro["api_url"]
    assert [p["key"] for p in answered["parameters"]] == ["date"]
    assert {f["name"] for f in _functions(api)} == {"check_order_status", "book_slot"}


def test_bad_input_is_a_422_with_paths_in_the_callers_dialect_and_nothing_changes(
    api: httpx.Client,
) -> None:
    create_agent(api)
    broken = {
        **BOLNA,
        "key": "custom_tasks",
        "value": {**BOLNA["value"], "param": {"order_id": "%(order_ID)s"}},  # type: ignore[dict-item]
    }
    response = api.post("/v1/agents/agent_abc123/functions", json=broken)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid"
    assert body["dialect"] == "bolna"
    by_path = {p["path"]: p for p in body["problems"]}
    assert by_path["$.key"]["found"] == "custom_tasks"
    assert "custom_task" in by_path["$.key"]["fix"]
    assert "%(order_id)s" in by_path["$.value.param.order_id"]["fix"]
    assert _functions(api) == []
    good = api.post("/v1/agents/agent_abc123/functions", json=BOLNA).json()
    url = f"/v1/agents/agent_abc123/functions/{good['id']}"
    assert api.put(url, json=broken).status_code == 422
    assert api.patch(url, params={"dialect": "bolna"}, json={"key": "nope"}).status_code == 422
    after = api.get(url).json()
    assert after["version"] == 1
    assert len(api.get(f"{url}/versions").json()["data"]) == 1
    not_json = api.post(
        "/v1/agents/agent_abc123/functions",
        content=b"{'name': 1}",
        headers={"Content-Type": "application/json"},
    )
    assert not_json.status_code == 422
    assert not_json.json()["problems"][0]["path"] == "$"
    nul = api.post("/v1/agents/agent_abc123/functions", json={**BOLNA, "description": "a\x00b"})
    assert nul.status_code == 422
    assert nul.json()["problems"][0]["path"] == "$.description"


def test_patch_merges_in_the_functions_dialect_and_refuses_to_drop_fields(
    api: httpx.Client,
) -> None:
    create_agent(api)
    call2me = {
        "name": "get_order_status",
        "description": "Look up an order.",
        "url": "https://api.example.com/o",
        "method": "POST",
        "parameters": {"type": "object", "properties": {}},
        "speak_during_execution": "One moment.",
        "timeout_ms": 4000,
    }
    fid = api.post("/v1/agents/agent_abc123/functions", json=call2me).json()["id"]
    url = f"/v1/agents/agent_abc123/functions/{fid}"
    patched = api.patch(url, json={"timeout_ms": 3000, "speak_during_execution": None})
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    now = api.get(url, params={"dialect": "call2me"}).json()["function"]
    assert now["timeout_ms"] == 3000
    assert "speak_during_execution" not in now
    bolna_id = api.post("/v1/agents/agent_abc123/functions", json=BOLNA).json()["id"]
    lossy = api.patch(
        f"/v1/agents/agent_abc123/functions/{bolna_id}",
        params={"dialect": "call2me"},
        json={"timeout_ms": 1000},
    )
    assert lossy.status_code == 422
    assert "voicefn" in lossy.json()["problems"][0]["fix"]


def test_every_change_is_a_version_old_ones_readable_and_restorable(api: httpx.Client) -> None:
    create_agent(api)
    fid = api.post("/v1/agents/agent_abc123/functions", json=BOLNA).json()["id"]
    url = f"/v1/agents/agent_abc123/functions/{fid}"
    api.patch(url, json={"value": {"url": "https://api.example.com/v2"}})
    replaced = api.put(url, json={**BOLNA, "name": "order_status"}).json()
    assert replaced["version"] == 3
    assert replaced["name"] == "order_status"
    versions = api.get(f"{url}/versions").json()
    assert versions["current"] == 3
    assert [(v["version"], v["change"]) for v in versions["data"]] == [
        (3, "update"),
        (2, "update"),
        (1, "create"),
    ]
    v2 = api.get(f"{url}/versions/2", params={"dialect": "bolna"}).json()
    assert v2["function"]["value"]["url"] == "https://api.example.com/v2"
    restored = api.post(f"{url}/versions/2/restore")
    assert restored.status_code == 200
    assert restored.json()["version"] == 4
    assert restored.json()["name"] == "check_order_status"
    latest = api.get(f"{url}/versions").json()["data"][0]
    assert (latest["change"], latest["restored_from"]) == ("restore", 2)
    assert api.get(f"{url}/versions/99").status_code == 404


def test_names_are_unique_per_agent(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    create_agent(api, "agent_two")
    assert api.post("/v1/agents/agent_abc123/functions", json=BOLNA).status_code == 201
    assert api.post("/v1/agents/agent_two/functions", json=BOLNA).status_code == 201
    again = api.post("/v1/agents/agent_abc123/functions", json=BOLNA)
    assert again.status_code == 422
    assert again.json()["problems"][0]["path"] == "$.name"
    assert len(_functions(api)) == 1


def test_delete_removes_the_function(api: httpx.Client, server: Any) -> None:
    create_agent(api)
    fid = api.post("/v1/agents/agent_abc123/functions", json=echo_function(server.url)).json()["id"]
    url = f"/v1/agents/agent_abc123/functions/{fid}"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert api.delete(url).status_code == 404
    assert _functions(api) == []


def test_from_curl_and_validate_have_no_side_effects(api: httpx.Client) -> None:
    create_agent(api)
    made = api.post(
        "/v1/functions/from-curl",
        json={
            "curl": "curl 'https://api.yourstore.com/orders?order_id=ORD-78234' "
            "-H 'Authorization: Bearer sk_live_abc123'"
        },
    )
    assert made.status_code == 200, made.text
    function = made.json()["function"]
    assert function["action"]["api_token"] == "Bearer sk_live_abc123"  # yours, to save
    assert function["action"]["url"].startswith("https://api.yourstore.com/orders")
    bad = api.post("/v1/functions/from-curl", json={"curl": "wget http://x"})
    assert bad.status_code == 422
    assert bad.json()["problems"][0]["path"] == "$.curl"
    checked = api.post("/v1/functions/validate", json={**BOLNA, "key": "custom_tsk"}).json()
    assert checked["ok"] is False
    assert checked["dialect"] == "bolna"
    assert any(p["path"] == "$.key" for p in checked["problems"])
    fine = api.post("/v1/functions/validate", json=function).json()
    assert fine["ok"] is True
    assert fine["function"]["action"]["api_token"] == "[secret]"
    assert _functions(api) == []
