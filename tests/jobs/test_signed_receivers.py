"""Signed webhooks reaching real receivers: examples/webhook_receiver.py (FastAPI under uvicorn
on a free port) fed by a worker, and the pre-call webhook signed by the Executor."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from jobs_support import settled
from receivers import Receiver

from voicefn.context import CallContext
from voicefn.executor import Executor
from voicefn.jobs import HttpJob, JobWorker
from voicefn.spec import Function
from voicefn.store import SqlStore, Workspace
from voicefn.webhooks import WebhookVerificationError, new_secret, verify

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent / "examples"))

import webhook_receiver


@dataclass
class Served:
    url: str
    app: Any


@pytest.fixture
def example_receiver(request: pytest.FixtureRequest) -> Iterator[Served]:
    secret: str = request.param if hasattr(request, "param") else new_secret()
    app = webhook_receiver.create_app([secret])
    app.state.secret = secret
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the example receiver did not start"
        time.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", app)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


async def test_the_example_receiver_accepts_voicefn_webhooks_once_and_refuses_forgeries(
    store: SqlStore, ws: Workspace, worker: JobWorker, example_receiver: Served
) -> None:
    secret = example_receiver.app.state.secret
    async with store.write() as repos:
        await repos.signing_keys.create(ws, secret=secret)
    record = {"call_id": "CA1", "status": "completed", "summary": "Booked for Tuesday."}
    async with store.write() as repos:
        [job_id] = await repos.jobs.enqueue(
            ws, "CA1", [HttpJob(example_receiver.url + "/voicefn", record)]
        )
    [job] = await settled(store, ws, [job_id])
    assert job.last_status == 204
    assert example_receiver.app.state.handled == [record]
    body = b'{"call_id":"CA1","status":"completed","summary":"Booked for Tuesday."}'
    async with httpx.AsyncClient(base_url=example_receiver.url) as client:
        from voicefn.webhooks import signature_headers

        replay = signature_headers(job_id, body, secret)
        again = await client.post("/voicefn", content=body, headers=replay)
        assert again.status_code == 200  # a redelivery: acknowledged, not handled again
        forged = signature_headers("job_forged", body, new_secret())
        assert (await client.post("/voicefn", content=body, headers=forged)).status_code == 401
        tampered = body.replace(b"Tuesday", b"Friday")
        signed = signature_headers("job_x", body, secret)
        assert (await client.post("/voicefn", content=tampered, headers=signed)).status_code == 401
        assert (await client.post("/voicefn", content=body)).status_code == 401
    assert example_receiver.app.state.handled == [record]


def _transfer_like(url: str) -> Function:
    return Function.model_validate(
        {
            "name": "check_order",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
            "action": {
                "method": "GET",
                "url": url + "/order",
                "pre_call_webhook_param": {"order": "%(order_id)s"},
                "pre_call_webhook_url": url + "/pre-call",
            },
        }
    )


async def test_the_pre_call_webhook_is_signed(executor: Executor, receiver: Receiver) -> None:
    old, new = new_secret(), new_secret()
    executor.webhooks.signing_secret = [new, old]
    ctx = CallContext(agent_id="agent_1", call_sid="CA2")
    result = await executor.run(_transfer_like(receiver.url), {"order_id": "A-7"}, ctx)
    assert result.ok
    await executor.webhooks.drain(30)
    [hook] = receiver.at("/pre-call")
    assert hook.json["order"] == "A-7"
    assert hook.json["status"] == "in-progress"
    verify(hook.headers, hook.body, old)
    verify(hook.headers, hook.body, new)
    with pytest.raises(WebhookVerificationError):
        verify(hook.headers, hook.body, new_secret())


async def test_the_pre_call_webhook_uses_the_resolver_and_survives_its_failure(
    executor: Executor, receiver: Receiver
) -> None:
    secret = new_secret()
    asked: list[CallContext] = []

    async def keys(ctx: CallContext) -> list[str]:
        asked.append(ctx)
        if ctx.call_sid == "broken":
            raise RuntimeError("the key store is down")
        return [secret]

    executor.webhooks.signing = keys
    fn = _transfer_like(receiver.url)
    await executor.run(fn, {"order_id": "1"}, CallContext(workspace_id="ws_1", call_sid="ok"))
    await executor.run(fn, {"order_id": "2"}, CallContext(workspace_id="ws_1", call_sid="broken"))
    await executor.webhooks.drain(30)
    hooks = sorted(receiver.at("/pre-call"), key=lambda a: a.json["order"])
    assert [h.json["order"] for h in hooks] == ["1", "2"]  # the webhook is never dropped
    verify(hooks[0].headers, hooks[0].body, secret)
    assert hooks[1].header("webhook-signature") is None  # sent unsigned, with a warning
    assert [c.call_sid for c in asked] == ["ok", "broken"]


async def test_without_a_secret_the_pre_call_webhook_is_unsigned(
    executor: Executor, receiver: Receiver
) -> None:
    await executor.run(_transfer_like(receiver.url), {"order_id": "3"}, CallContext())
    await executor.webhooks.drain(30)
    [hook] = receiver.at("/pre-call")
    assert hook.header("webhook-signature") is None
