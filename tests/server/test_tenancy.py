"""No request can read, change or even detect another workspace's data.

The walk covers every operation in the OpenAPI document, so a new route is walked too (and the
test fails until it has a request body here). Workspace B's (non-operator) key is sent with
workspace A's real ids, and again with made-up ids of the same shape: the two answers must be the
same, A's markers must never appear, nothing may reach A's function server, and A's data must be
unchanged afterwards.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

import httpx
import pytest
from api_helpers import echo_function
from live import Live

MARKER = "A-ONLY-MARKER-7f3a9c"
TOKEN = "Bearer sk_live_tenant_a_0123456789"


def _function(url: str, name: str = "check_order") -> dict[str, Any]:
    return echo_function(url, name)


def bodies(server_url: str) -> dict[tuple[str, str], Any]:
    """A valid request body for every operation that takes one (the walk must get past
    validation to reach the lookups)."""
    fn = _function(server_url, "b_function")
    return {
        ("post", "/v1/api-keys"): {"name": "b key"},
        ("post", "/v1/workspaces"): {"name": "tenant-c"},
        ("put", "/v1/workspaces/{workspace_id}/settings"): {"allow_private_network": True},
        ("post", "/v1/agents"): {"name": "b-agent", "system_prompt": "B"},
        ("post", "/v1/agents/import"): {"name": "b-import", "functions": [fn]},
        ("put", "/v1/agents/{agent_id}"): {"name": "b-put", "system_prompt": "B"},
        ("patch", "/v1/agents/{agent_id}"): {"system_prompt": "hijacked"},
        ("post", "/v1/agents/{agent_id}/functions"): fn,
        ("put", "/v1/agents/{agent_id}/functions/{function_id}"): fn,
        ("patch", "/v1/agents/{agent_id}/functions/{function_id}"): {"description": "hijacked"},
        ("post", "/v1/agents/{agent_id}/functions/{function_id}/test"): {
            "arguments": {"order_id": "1"}
        },
        ("post", "/v1/agents/{agent_id}/functions/{name}/execute"): {
            "arguments": {"order_id": "1"}
        },
        ("post", "/v1/functions/from-curl"): {"curl": "curl https://b.example/orders"},
        ("post", "/v1/functions/validate"): fn,
        ("post", "/v1/signing-keys"): {},
        ("post", "/v1/agents/{agent_id}/calls"): CALL_REPORT,
    }


#: A finished call, as a host reports it (B reports it under A's agent id: refused).
CALL_REPORT = {
    "call_sid": "CA-B-1",
    "started_at": "2026-12-01T10:00:00Z",
    "ended_at": "2026-12-01T10:01:00Z",
    "transcript": [{"role": "caller", "text": "hello"}],
}


#: Routes only operator keys may use: B's key must be refused before any lookup.
OPERATOR_ONLY = {
    ("get", "/v1/workspaces"),
    ("post", "/v1/workspaces"),
    ("get", "/v1/workspaces/{workspace_id}/settings"),
    ("put", "/v1/workspaces/{workspace_id}/settings"),
    ("get", "/metrics"),
}


def _a_world(live: Live, api: httpx.Client, server_url: str) -> dict[str, Any]:
    agent = api.post(
        "/v1/agents",
        json={
            "name": "tenant-a-agent",
            "system_prompt": f"You are {MARKER}.",
            "variables": {"crm_token": "crm-A-secret-value"},
        },
    ).json()
    doc = _function(server_url)
    doc["description"] = f"Look up an order ({MARKER})."
    doc["action"]["api_token"] = TOKEN
    fn = api.post(f"/v1/agents/{agent['id']}/functions", json=doc).json()
    api.patch(
        f"/v1/agents/{agent['id']}/functions/{fn['id']}",
        params={"dialect": "voicefn"},
        json={"filler": "one moment"},
    )
    run = api.post(
        f"/v1/agents/{agent['id']}/functions/check_order/execute",
        json={"arguments": {"order_id": "A-1"}},
    ).json()
    assert run["ok"] is True  # warm: A's function is in the execute path's cache
    call = api.post(
        f"/v1/agents/{agent['id']}/calls",
        json={
            **CALL_REPORT,
            "call_sid": "CA-A-1",
            "variables": {"note": MARKER},
            "transcript": [{"role": "caller", "text": f"I am {MARKER}"}],
        },
    ).json()
    key = api.post("/v1/api-keys", json={"name": "second A key"}).json()
    signing = api.post("/v1/signing-keys", json={"agent_id": agent["id"]}).json()
    return {
        "agent_id": agent["id"],
        "function_id": fn["id"],
        "name": "check_order",
        "version": "1",
        "execution_id": run["execution_id"],
        "key_id": key["id"],
        "workspace_id": api.get("/v1/workspace").json()["id"],
        "job_id": _a_job(live),
        "signing_key_id": signing["id"],
        "call_id": call["call"]["id"],
        "secrets": [TOKEN, "crm-A-secret-value", key["key"], signing["secret"]],
    }


def _a_job(live: Live) -> str:
    """A post-call job of A's, due in an hour (nothing delivers it during the test)."""
    from voicefn.jobs import HttpJob
    from voicefn.store import SecretBox, database_url, open_store

    config = live.platform.config

    async def enqueue() -> str:
        url = database_url(config.data_dir, config.database_url)
        store = await open_store(url, SecretBox.load(config.data_dir), migrate=False)
        try:
            async with store.write() as repos:
                ws = await repos.workspaces.by_name(config.first_workspace)
                assert ws is not None
                job = HttpJob(f"https://a.example/{MARKER}", {"marker": MARKER}, key=MARKER)
                ids = await repos.jobs.enqueue(ws, "CA-A", [job], delay_s=3600)
        finally:
            await store.close()
        return ids[0]

    return asyncio.run(enqueue())


def _made_up(kind: str, real: str) -> str:
    if kind == "version":
        return real  # the made-up function id is what differs
    if kind == "name":
        return "no_such_function"
    prefix = real.split("_", 1)[0]
    return f"{prefix}_{secrets.token_hex(len(real.split('_', 1)[1]) // 2)}"


def _snapshot(api: httpx.Client, a: dict[str, Any]) -> dict[str, Any]:
    agent, fn = a["agent_id"], a["function_id"]
    return {
        "export": api.get(f"/v1/agents/{agent}/export", params={"include_secrets": "true"}).text,
        "versions": api.get(f"/v1/agents/{agent}/functions/{fn}/versions").json(),
        "executions": api.get("/v1/executions").json(),
        "keys": api.get("/v1/api-keys").json(),
        "settings": api.get("/v1/settings").json(),
        "agents": api.get("/v1/agents").json(),
        "job": api.get(f"/v1/jobs/{a['job_id']}").json(),
        "signing_keys": api.get("/v1/signing-keys").json(),
    }


def _normal(text: str, ids: list[str]) -> str:
    text = re.sub(r'"request_id":"[0-9a-f]+"', '"request_id":"<R>"', text)
    for value in sorted({i for i in ids if len(i) > 2}, key=len, reverse=True):
        text = text.replace(value, "<ID>")
    return text


def test_every_route_refuses_another_workspaces_things(
    live: Live, api: httpx.Client, server: Any
) -> None:
    a = _a_world(live, api, server.url)
    created = api.post("/v1/workspaces", json={"name": "tenant-b"}).json()
    b_key = created["api_key"]["key"]
    assert created["api_key"]["operator"] is False
    before = _snapshot(api, a)
    received = len(server.received)
    schema = api.get("/openapi.json").json()
    table = bodies(server.url)
    operations = [
        (method, path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    # PUT creates under a given id; run it last so it cannot shadow the lookups of the others.
    operations.sort(key=lambda o: o[0] == "put")
    missing = [
        f"{m.upper()} {p}" for m, p, op in operations if "requestBody" in op and (m, p) not in table
    ]
    assert not missing, f"add a request body to bodies() for: {missing}"
    markers = [MARKER, a["workspace_id"], a["execution_id"], a["key_id"], *a["secrets"]]
    walked = 0
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {b_key}"}, timeout=60
    ) as b:
        for method, path, op in operations:
            names = re.findall(r"{(\w+)}", path)
            body = table.get((method, path))
            query = {
                p["name"]: a[p["name"]]
                for p in op.get("parameters", [])
                if p["in"] == "query" and p["name"] in ("agent_id", "function_id")
            }
            fakes = {n: _made_up(n, a[n]) for n in [*names, *query]}
            real_path = path
            fake_path = path
            for n in names:
                real_path = real_path.replace(f"{{{n}}}", a[n])
                fake_path = fake_path.replace(f"{{{n}}}", fakes[n])
            fake_query = {k: fakes[k] for k in query}
            real = b.request(method, real_path, json=body, params=query)
            walked += 1
            where = f"{method.upper()} {path}"
            assert real.status_code < 500, f"{where}: {real.status_code} {real.text}"
            if (method, path) in OPERATOR_ONLY:
                assert real.status_code == 403, where
            elif names and method != "put":  # PUT makes B's own agent under that id
                assert real.status_code == 404, f"{where} found A's thing: {real.text}"
            if (names or query) and method != "put":
                fake = b.request(method, fake_path, json=body, params=fake_query)
                ids = [*(a[n] for n in fakes), *fakes.values()]
                assert real.status_code == fake.status_code, where
                assert _normal(real.text, ids) == _normal(fake.text, ids), (
                    f"{where}: answers differ, so A's ids are detectable"
                )
            shown = real.text
            for sent in [*(a[n] for n in names), *query.values()]:
                shown = shown.replace(sent, "")  # the request's own words, echoed
            for marker in markers:
                assert marker not in shown, f"{where} revealed {marker!r}"
    assert walked == len(operations) > 20
    assert len(server.received) == received, "B's requests ran A's function"
    assert _snapshot(api, a) == before
    b_agents = httpx.get(
        f"{live.url}/v1/agents", headers={"Authorization": f"Bearer {b_key}"}
    ).json()
    assert {x["name"] for x in b_agents["data"]} >= {"b-agent", "b-import"}
    assert "tenant-a-agent" not in {x["name"] for x in b_agents["data"]}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer vfn_not_a_key", "Basic abc"])
def test_no_key_or_a_bad_key_is_401_everywhere(live: Live, header: str) -> None:
    headers = {"Authorization": header} if header else {}
    for path in ("/v1/agents", "/v1/executions", "/v1/api-keys", "/v1/settings", "/metrics"):
        response = httpx.get(f"{live.url}{path}", headers=headers)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


def test_a_revoked_key_stops_working(live: Live, api: httpx.Client) -> None:
    extra = api.post("/v1/api-keys", json={"name": "temp"}).json()
    with live.client(extra["key"]) as temp:
        assert temp.get("/v1/agents").status_code == 200
        assert api.delete(f"/v1/api-keys/{extra['id']}").status_code == 200
        assert temp.get("/v1/agents").status_code == 401
    keys = api.get("/v1/api-keys").json()
    assert [k["revoked_at"] is not None for k in keys] == [False, True]
    assert all("key" not in k for k in keys)
    last = api.delete(f"/v1/api-keys/{keys[0]['id']}")
    assert last.status_code == 409
    member = api.post("/v1/api-keys", json={"name": "member"}).json()
    with live.client(member["key"]) as plain:
        assert plain.post("/v1/api-keys", json={"operator": True}).status_code == 403
        assert plain.get("/v1/workspaces").status_code == 403
