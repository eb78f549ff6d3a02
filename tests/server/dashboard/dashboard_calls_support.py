"""What the calls and dead-letter tests share: a service whose job workers give up fast (3
attempts, backoff in hundredths of a second), a webhook receiver that can be broken and fixed,
and a call reported with a post-call webhook to it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import echo_function, wait_until
from dashboard_helpers import Site, allow_loopback, new_workspace
from live import live_server

from voicefn.jobs.settings import JobSettings
from voicefn.server import ServerConfig
from voicefn.testing import ScriptedLLM, text

from servers import RawRequest, RawServer, raw_response, running_raw_server, running_server

ATTEMPTS = 3
FAST_JOBS = JobSettings(max_attempts=ATTEMPTS, base_delay_s=0.01, max_delay_s=0.05, poll_s=0.05)


@dataclass
class Receiver:
    """A webhook receiver answering ``status`` (500: broken) to every request."""

    server: RawServer
    status: int = 500
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"

    def respond(self, _: RawRequest) -> bytes:
        with self.lock:
            status = self.status
        body = b'{"ok": true}' if status < 300 else b'{"error": "receiver down"}'
        return raw_response(body, status, {"Content-Type": "application/json"})

    def fix(self) -> None:
        with self.lock:
            self.status = 200


@dataclass
class World:
    site: Site
    receiver: Receiver


def data_dir(factory: pytest.TempPathFactory) -> Path:
    return factory.mktemp("dashboard-calls") / "data"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    config = ServerConfig(data_dir=data_dir(tmp_path_factory), change_poll_s=0.05, jobs=FAST_JOBS)
    holder: dict[str, Receiver] = {}
    with (
        live_server(config) as live,
        running_server() as functions,
        ScriptedLLM() as llm,
        running_raw_server(lambda r: holder["r"].respond(r)) as raw,
    ):
        holder["r"] = Receiver(raw)
        yield World(Site(live, functions, llm), holder["r"])


@dataclass
class Reported:
    key: str
    agent_id: str
    call_id: str
    execution_id: str
    call_sid: str


def agent_doc(site: Site, webhook_url: str, name: str = "calls-agent") -> dict[str, Any]:
    return {
        "name": name,
        "system_prompt": "You help callers with orders.",
        "webhook_url": webhook_url,
        "llm": {"model": "scripted", "base_url": site.llm.base_url, "max_retries": 0},
        "post_call_variables": [
            {
                "name": "reason",
                "type": "enum",
                "values": ["billing", "shipping"],
                "description": "Why they called",
            }
        ],
    }


def report_call(world: World, call_sid: str, key: str | None = None) -> Reported:
    """A workspace (or ``key``'s), an agent with a function and a webhook to the receiver; the
    function run through the execute endpoint during the call; the call reported, its
    extraction answered by the scripted LLM."""
    site = world.site
    if key is None:
        key = new_workspace(site, "calls")
        allow_loopback(site, key)
    with site.api(key) as api:
        doc = agent_doc(site, world.receiver.url, name=f"agent-{call_sid}")
        agent = api.post("/v1/agents", json=doc).json()
        fn = api.post(
            f"/v1/agents/{agent['id']}/functions", json=echo_function(site.functions.url)
        ).json()
        ran = api.post(
            f"/v1/agents/{agent['id']}/functions/{fn['name']}/execute",
            json={
                "arguments": {"order_id": "ORD-77"},
                "context": {"call_sid": call_sid},
                "tool_call_id": "tool_1",
            },
        )
        assert ran.status_code == 200, ran.text
        site.llm.push(text(json.dumps({"reason": "shipping"})))
        reported = api.post(
            f"/v1/agents/{agent['id']}/calls",
            json={
                "call_sid": call_sid,
                "from_number": "+15550100",
                "started_at": "2026-12-01T10:00:00Z",
                "ended_at": "2026-12-01T10:02:30Z",
                "transcript": [
                    {"role": "agent", "text": "Hi, Acme orders."},
                    {"role": "caller", "text": "Where is my order ORD-77?"},
                ],
            },
        )
        assert reported.status_code == 202, reported.text
    return Reported(
        key, agent["id"], reported.json()["call"]["id"], ran.json()["execution_id"], call_sid
    )


def scripted_agent(world: World, name: str, **doc: Any) -> tuple[str, str]:
    """A new workspace (its functions may reach loopback) with an agent on the scripted LLM:
    the key and the agent's id."""
    site = world.site
    key = new_workspace(site, name)
    allow_loopback(site, key)
    llm = {"model": "scripted", "base_url": site.llm.base_url, "max_retries": 0}
    with site.api(key) as api:
        created = api.post(
            "/v1/agents", json={"name": name, "system_prompt": "You help.", "llm": llm, **doc}
        )
    assert created.status_code == 201, created.text
    return key, str(created.json()["id"])


def jobs_of(api: httpx.Client, call_id: str) -> dict[str, dict[str, Any]]:
    return {j["name"]: j for j in api.get(f"/v1/calls/{call_id}").json()["jobs"]}


def wait_for_state(site: Site, key: str, call_id: str, name: str, state: str) -> dict[str, Any]:
    """The call's job ``name`` once it is in ``state`` (its siblings settled too)."""

    def check() -> dict[str, Any] | None:
        with site.api(key) as api:
            jobs = jobs_of(api, call_id)
        job = jobs.get(name)
        return job if job is not None and job["state"] == state else None

    found: dict[str, Any] = wait_until(check, f"job {name} to be {state}", timeout=60.0)
    return found
