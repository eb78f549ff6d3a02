"""The dashboard's routes and tenancy: a session sees its own workspace only.

Like the API's walk (tests/server/test_tenancy.py), this walks every route the dashboard mounts,
so a new page cannot skip it: workspace B's session asks with workspace A's real ids and again
with made-up ids of the same shape; the answers must be the same (a 404), A's markers must never
appear, nothing may reach A's function server, and A's data (and A's live test call) must be
unchanged afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_helpers import echo_function, wait_until
from dashboard_helpers import Site, allow_loopback, new_workspace, read_events, session
from fastapi.routing import APIRoute

from voicefn.server.dashboard import ROUTERS
from voicefn.testing import text

MARKER = "A-ONLY-MARKER-5d1e"


def routes() -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    )


@pytest.fixture
def a_world(site: Site) -> Iterator[dict[str, Any]]:
    key = new_workspace(site, "walk-a")
    allow_loopback(site, key)
    with site.api(key) as api:
        agent = api.post(
            "/v1/agents",
            json={
                "name": "a-agent",
                "system_prompt": f"You are {MARKER}.",
                "variables": {"crm_token": "crm-A-secret"},
                # A's post-call webhook is refused for good (400): its job is dead-letter at once
                "webhook_url": f"{site.functions.url}/status/400",
                "llm": {"model": "scripted", "base_url": site.llm.base_url, "max_retries": 0},
            },
        ).json()
        doc = echo_function(site.functions.url)
        doc["description"] = f"Look up an order ({MARKER})."
        fn = api.post(f"/v1/agents/{agent['id']}/functions", json=doc).json()
        run = api.post(
            f"/v1/agents/{agent['id']}/functions/{fn['id']}/test",
            json={"arguments": {"order_id": "A-1"}},
        ).json()
        extra = api.post("/v1/api-keys", json={"name": "a spare"}).json()
        stored = api.post(
            f"/v1/agents/{agent['id']}/calls",
            json={
                "call_sid": "CA-A-1",
                "started_at": "2026-12-01T10:00:00Z",
                "ended_at": "2026-12-01T10:01:00Z",
                "transcript": [{"role": "caller", "text": f"I am {MARKER}."}],
            },
        ).json()["call"]

        def dead_webhook() -> str | None:
            jobs = api.get(f"/v1/calls/{stored['id']}").json()["jobs"]
            return next((j["id"] for j in jobs if j["state"] == "dead"), None)

        dead_job = wait_until(dead_webhook, "A's dead-letter webhook job", timeout=60.0)
    client, token = session(site, key)
    try:
        started = client.post(
            f"/agents/{agent['id']}/call", headers={"X-CSRF-Token": token}, json={}
        )
        events = read_events(started)
        assert events[0][0] == "call", started.text
        yield {
            "key": key,
            "agent_id": agent["id"],
            "function_id": fn["id"],
            "execution_id": run["execution_id"],
            "key_id": extra["id"],
            "call_id": events[0][1]["id"],
            "stored_call_id": stored["id"],
            "job_id": dead_job,
            "version": "1",
            "client": client,
            "token": token,
        }
    finally:
        client.close()


def made_up(name: str, real: str) -> str:
    if name == "version":
        return real  # the made-up function id is what differs
    prefix, rest = real.split("_", 1)
    return f"{prefix}_{'0' * len(rest)}"


def snapshot(site: Site, a: dict[str, Any]) -> dict[str, Any]:
    with site.api(a["key"]) as api:
        agent, fn = a["agent_id"], a["function_id"]
        return {
            "export": api.get(f"/v1/agents/{agent}/export", params={"include_secrets": "1"}).text,
            "versions": api.get(f"/v1/agents/{agent}/functions/{fn}/versions").json(),
            "executions": api.get("/v1/executions").json(),
            "keys": api.get("/v1/api-keys").json(),
            "calls": api.get(f"/v1/calls/{a['stored_call_id']}").json(),
            "jobs": api.get("/v1/jobs").json(),
        }


def test_every_dashboard_route_refuses_another_workspaces_things(
    site: Site, a_world: dict[str, Any]
) -> None:
    a = a_world
    before = snapshot(site, a)
    received = len(site.functions.received)
    b_client, b_token = session(site, new_workspace(site, "walk-b"))
    walked = 0
    try:
        for method, path in routes():
            names = re.findall(r"{(\w+)}", path)
            if not names and method != "GET":
                continue  # no id to give: it can only act on B's own workspace (or sign B out)
            unknown = [n for n in names if n not in a]
            assert not unknown, f"{method} {path}: add {unknown} to this walk"
            answers = []
            for ids in ({n: a[n] for n in names}, {n: made_up(n, a[n]) for n in names}):
                url = path.format(**ids)
                if method == "GET":
                    response = b_client.get(url)
                else:
                    response = b_client.request(
                        method,
                        url,
                        headers={"X-CSRF-Token": b_token, "Origin": site.url},
                        json={"text": "hello", "document": {"name": "x"}, "curl": "curl x"},
                    )
                assert MARKER not in response.text, f"{method} {url} shows A's data"
                answers.append((response.status_code, response.text))
            if names:
                assert answers[0] == answers[1], f"{method} {path} tells A's ids apart"
                assert answers[0][0] == 404, f"{method} {path}: {answers[0]}"
                walked += 1
    finally:
        b_client.close()
    assert walked >= 18  # every route with an id
    assert len(site.functions.received) == received  # nothing ran A's function
    assert snapshot(site, a) == before
    # A's test call is still A's, and alive.
    site.llm.push(text("Still here."))
    turn = a["client"].post(
        f"/calls/{a['call_id']}/turn", headers={"X-CSRF-Token": a["token"]}, json={"text": "hi"}
    )
    assert ("message", {"text": "Still here."}) in read_events(turn)


def test_every_dashboard_route_needs_a_session(site: Site, a_world: dict[str, Any]) -> None:
    a = a_world
    with httpx.Client(base_url=site.url, timeout=60.0, follow_redirects=False) as anonymous:
        for method, path in routes():
            if path == "/login":
                continue
            url = path.format(**{n: a[n] for n in re.findall(r"{(\w+)}", path)})
            response = anonymous.request(method, url, headers={"Origin": site.url})
            if method == "GET":
                assert response.status_code == 303, f"{method} {url}"
                assert response.headers["location"].startswith("/login?next=")
            else:
                assert response.status_code == 401, f"{method} {url}"
            assert MARKER not in response.text
