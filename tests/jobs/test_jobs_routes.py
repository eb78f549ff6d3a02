"""The jobs and signing-key routes, and ``voicefn jobs``, against the service under uvicorn
(its worker delivering to a real receiver); the pre-call webhook signed with the agent's key."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_support import PATIENCE_S
from receivers import Answer, Receiver
from typer.testing import CliRunner

from voicefn.cli import app as cli
from voicefn.jobs import HttpJob
from voicefn.jobs.settings import JobSettings
from voicefn.server import EgressDefaults, ServerConfig
from voicefn.store import SecretBox, database_url, open_store
from voicefn.webhooks import WebhookVerificationError, verify

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from live import Live, live_server


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    config = ServerConfig(
        data_dir=tmp_path / "data",
        database_url=db_url,
        egress=EgressDefaults(allow_private_network=True),
        change_poll_s=0.05,
        jobs=JobSettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, poll_s=0.05),
    )
    with live_server(config) as served:
        yield served


@pytest.fixture
def api(live: Live) -> Iterator[httpx.Client]:
    with live.client() as client:
        yield client


def _enqueue(live: Live, *jobs: HttpJob) -> list[str]:
    """Jobs of the first workspace, written as the end of a call writes them."""
    config = live.platform.config

    async def enqueue() -> list[str]:
        url = database_url(config.data_dir, config.database_url)
        store = await open_store(url, SecretBox.load(config.data_dir), migrate=False)
        try:
            async with store.write() as repos:
                ws = await repos.workspaces.by_name(config.first_workspace)
                assert ws is not None
                return await repos.jobs.enqueue(ws, "CA-api", list(jobs))
        finally:
            await store.close()

    return asyncio.run(enqueue())


def _until(api: httpx.Client, job_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] == state:
            return job
        assert time.monotonic() < deadline, f"{job_id} stayed {job['state']}"
        time.sleep(0.02)


def test_dead_letter_jobs_listed_shown_and_redelivered(
    live: Live, api: httpx.Client, receiver: Receiver
) -> None:
    url = receiver.script("/crm", Answer(503), Answer(503), Answer(500), Answer(200))
    ok_url = receiver.url + "/fine"
    dead_id, ok_id = _enqueue(live, HttpJob(url, {"n": 1}), HttpJob(ok_url, {"n": 2}))
    dead = _until(api, dead_id, "dead")
    assert dead["attempts"] == 3
    assert [a["status"] for a in dead["attempt_log"]] == [503, 503, 500]
    assert dead["payload"]["body"] == {"n": 1}
    _until(api, ok_id, "succeeded")
    listed = api.get("/v1/jobs", params={"state": "dead"}).json()
    assert [j["id"] for j in listed["data"]] == [dead_id]
    everything = api.get("/v1/jobs", params={"call_id": "CA-api"}).json()
    assert {j["id"] for j in everything["data"]} == {dead_id, ok_id}
    assert api.post(f"/v1/jobs/{ok_id}/redeliver").status_code == 409
    again = api.post(f"/v1/jobs/{dead_id}/redeliver")
    assert again.status_code == 200
    assert again.json()["state"] == "queued"
    done = _until(api, dead_id, "succeeded")
    assert done["attempts"] == 4
    assert api.get("/v1/jobs/job_0000000000000000000000").status_code == 404
    assert api.post("/v1/jobs/job_0000000000000000000000/redeliver").status_code == 404
    page = api.get("/v1/jobs", params={"limit": 1}).json()
    assert len(page["data"]) == 1
    assert page["next_cursor"]
    rest = api.get("/v1/jobs", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert rest["data"][0]["id"] != page["data"][0]["id"]


def test_the_jobs_command(live: Live, receiver: Receiver) -> None:
    url = receiver.script("/gone", Answer(410), Answer(200))
    [job_id] = _enqueue(live, HttpJob(url, {"n": 1}, name="agent_webhook"))
    with live.client() as api:
        _until(api, job_id, "dead")
    runner = CliRunner()
    where = ["--url", live.url, "--api-key", live.key]
    listed = runner.invoke(cli, ["jobs", "list", "--state", "dead", *where])
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output
    assert "agent_webhook" in listed.output
    shown = runner.invoke(cli, ["jobs", "show", job_id, *where])
    assert shown.exit_code == 0, shown.output
    assert "final 410" in shown.output
    again = runner.invoke(cli, ["jobs", "redeliver", "--all-dead", *where])
    assert again.exit_code == 0, again.output
    assert f"{job_id} queued" in again.output
    with live.client() as api:
        _until(api, job_id, "succeeded")
    refused = runner.invoke(cli, ["jobs", "redeliver", job_id, *where])
    assert refused.exit_code == 1
    nothing = runner.invoke(cli, ["jobs", "redeliver", *where])
    assert nothing.exit_code == 2


def _arrived(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while len(receiver.at("/pre-call")) < count:
        assert time.monotonic() < deadline, "the pre-call webhooks did not arrive"
        time.sleep(0.02)


def test_signing_keys_rotate_and_sign_the_agents_pre_call_webhook(
    api: httpx.Client, receiver: Receiver
) -> None:
    agent = api.post("/v1/agents", json={"name": "support", "system_prompt": "Help."}).json()
    fn = {
        "name": "check_order",
        "description": "Use when the caller asks where their order is.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order id"}},
            "required": ["order_id"],
        },
        "action": {
            "method": "POST",
            "url": receiver.url + "/order",
            "pre_call_webhook_param": {"order": "%(order_id)s"},
            "pre_call_webhook_url": receiver.url + "/pre-call",
        },
    }
    made = api.post(f"/v1/agents/{agent['id']}/functions", json=fn)
    assert made.status_code == 201, made.text
    unknown = api.post("/v1/signing-keys", json={"agent_id": "agent_0000000000000000"})
    assert unknown.status_code == 404
    first = api.post("/v1/signing-keys", json={"agent_id": agent["id"]})
    assert first.status_code == 201
    old = first.json()
    assert old["secret"].startswith("whsec_")
    assert old["secret"].startswith(old["prefix"])
    run = api.post(
        f"/v1/agents/{agent['id']}/functions/check_order/execute",
        json={"arguments": {"order_id": "A-1"}},
    )
    assert run.json()["ok"] is True
    _arrived(receiver, 1)  # fire-and-forget: signed once it is sent
    new = api.post(
        "/v1/signing-keys", json={"agent_id": agent["id"], "expire_others_in_s": 600}
    ).json()
    keys = {k["id"]: k for k in api.get("/v1/signing-keys").json()}
    assert "secret" not in keys[old["id"]]
    assert keys[old["id"]]["expires_at"] is not None
    assert keys[new["id"]]["expires_at"] is None
    assert api.get(f"/v1/signing-keys/{new['id']}").json()["secret"] == new["secret"]
    api.post(
        f"/v1/agents/{agent['id']}/functions/check_order/execute",
        json={"arguments": {"order_id": "A-2"}},
    )
    _arrived(receiver, 2)
    one, two = sorted(receiver.at("/pre-call"), key=lambda a: a.json["order"])
    verify(one.headers, one.body, old["secret"])
    with pytest.raises(WebhookVerificationError):
        verify(one.headers, one.body, new["secret"])
    verify(two.headers, two.body, old["secret"])  # both sign until the old one expires
    verify(two.headers, two.body, new["secret"])
    assert api.delete(f"/v1/signing-keys/{old['id']}").status_code == 200
    assert api.get(f"/v1/signing-keys/{old['id']}").status_code == 404
    assert [k["id"] for k in api.get("/v1/signing-keys").json()] == [new["id"]]
