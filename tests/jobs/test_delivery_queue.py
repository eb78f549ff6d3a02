"""The job queue end to end: real databases (SQLite and PostgreSQL), a real worker, a real
receiver on loopback. Each test enqueues in a store transaction, as the end of a call does."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import pytest
from jobs_support import FAST, settled
from receivers import Answer, Receiver
from sqlalchemy import text

from voicefn.context import CallContext
from voicefn.executor import Executor
from voicefn.jobs import (
    FinalFailure,
    FunctionJob,
    HttpJob,
    JobWorker,
    RetryLater,
    RetryPolicy,
    TaskContext,
    TaskJob,
    task,
)
from voicefn.jobs.retry import parse_retry_after
from voicefn.spec import Function
from voicefn.store import SqlStore, Workspace
from voicefn.store.sql.jobs import JobFilter
from voicefn.webhooks import WebhookVerificationError, verify


async def _enqueue(store: SqlStore, ws: Workspace, *jobs: Any, call_id: str = "CA1") -> list[str]:
    async with store.write() as repos:
        return await repos.jobs.enqueue(ws, call_id, list(jobs))


async def _workspace_secret(store: SqlStore, ws: Workspace) -> list[str]:
    async with store.read() as repos:
        return await repos.signing_keys.secrets_for(ws.id, None)


async def test_a_webhook_is_delivered_once_signed_with_a_stable_key(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    url = receiver.script("/hook")
    record = {"call_id": "CA1", "status": "completed", "summary": "Ordered two pizzas."}
    [job_id] = await _enqueue(store, ws, HttpJob(url, record, name="agent_webhook"))
    [job] = await settled(store, ws, [job_id])
    [arrival] = receiver.at("/hook")
    assert arrival.json == record
    assert arrival.header("Idempotency-Key") == job_id == arrival.header("webhook-id")
    secrets = await _workspace_secret(store, ws)
    assert secrets
    assert secrets[0].startswith("whsec_")
    verify(arrival.headers, arrival.body, secrets[0])
    with pytest.raises(WebhookVerificationError):
        verify(arrival.headers, arrival.body + b" ", secrets[0])
    assert [(a.n, a.outcome, a.status) for a in job.attempt_log] == [(1, "ok", 200)]
    assert job.result == {"status": 200, "body": '{"status": 200}'}


async def test_retries_keep_the_idempotency_key_until_the_receiver_answers(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    url = receiver.script("/flaky", Answer(503), Answer(500), Answer(408), Answer(200))
    [job_id] = await _enqueue(store, ws, HttpJob(url, {"n": 1}))
    [job] = await settled(store, ws, [job_id])
    arrivals = receiver.at("/flaky")
    assert [a.header("Idempotency-Key") for a in arrivals] == [job_id] * 4
    assert [(a.outcome, a.status) for a in job.attempt_log] == [
        ("retry", 503),
        ("retry", 500),
        ("retry", 408),
        ("ok", 200),
    ]
    assert receiver.processed == {job_id: 1}


@pytest.mark.parametrize("status", [400, 401, 404, 410, 422])
async def test_a_4xx_other_than_408_425_429_is_final(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker, status: int
) -> None:
    url = receiver.script("/refuses", Answer(status), Answer(200))
    [job_id] = await _enqueue(store, ws, HttpJob(url, {}))
    [job] = await settled(store, ws, [job_id], ("dead",))
    assert job.attempts == 1
    assert job.last_status == status
    assert [a.outcome for a in job.attempt_log] == ["final"]


@pytest.mark.parametrize("status", [425, 429])
async def test_425_and_429_are_retried(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker, status: int
) -> None:
    url = receiver.script("/later", Answer(status), Answer(200))
    [job_id] = await _enqueue(store, ws, HttpJob(url, {}))
    [job] = await settled(store, ws, [job_id])
    assert [a.status for a in job.attempt_log] == [status, 200]


async def test_retry_after_is_honoured(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    # The worker's own backoff is ~10 ms: only Retry-After explains a second's wait.
    url = receiver.script("/busy", Answer(429, {"Retry-After": "2"}), Answer(200))
    [job_id] = await _enqueue(store, ws, HttpJob(url, {}))
    [job] = await settled(store, ws, [job_id])
    first, second = job.attempt_log
    assert first.retry_after_s == 2.0
    assert second.started_us - first.finished_us >= 2_000_000


def test_retry_after_as_an_http_date_and_the_backoff_bounds() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date, now) or 0) <= 31
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("soon") is None
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=60.0)
    for attempt in range(1, 12):
        ceiling = min(60.0, 2 ** (attempt - 1))
        delays = [policy.delay_s(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert policy.delay_s(3, retry_after_s=7.0) == 7.0
    assert RetryPolicy(max_retry_after_s=10).delay_s(1, retry_after_s=10_000) == 10


async def test_dead_letter_after_max_attempts_then_redelivered(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    url = receiver.script("/down", *[Answer(503)] * 3)
    [job_id] = await _enqueue(store, ws, HttpJob(url, {"n": 1}, max_attempts=3))
    [dead] = await settled(store, ws, [job_id], ("dead",))
    assert dead.attempts == 3
    assert [a.outcome for a in dead.attempt_log] == ["retry", "retry", "retry"]
    async with store.read() as repos:
        listed = await repos.jobs.page(ws, JobFilter(state="dead"), limit=10, cursor=None)
    assert [j.id for j in listed.items] == [job_id]
    async with store.write() as repos:
        again = await repos.jobs.redeliver(ws, job_id)
    assert again is not None
    assert again.state == "queued"
    [done] = await settled(store, ws, [job_id])
    assert done.attempts == 4
    assert done.attempt_log[-1].outcome == "ok"
    assert {a.header("Idempotency-Key") for a in receiver.at("/down")} == {job_id}


async def test_the_workers_setting_dead_letters_jobs_that_name_none(
    store: SqlStore, ws: Workspace, receiver: Receiver, executor: Executor
) -> None:
    async def executor_for(_: str) -> Executor:
        return executor

    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    w = JobWorker(store, executor_for=executor_for, policy=policy, poll_s=0.05)
    await w.start()
    try:
        url = receiver.script("/down2", *[Answer(500)] * 5)
        [job_id] = await _enqueue(store, ws, HttpJob(url, {}))
        [job] = await settled(store, ws, [job_id], ("dead",))
    finally:
        await w.stop()
    assert job.attempts == 2


async def test_enqueueing_a_key_twice_makes_one_job(
    store: SqlStore, ws: Workspace, receiver: Receiver
) -> None:
    url = receiver.url + "/once"
    first = await _enqueue(store, ws, HttpJob(url, {"n": 1}, key="CA1:webhook"))
    second = await _enqueue(
        store, ws, HttpJob(url, {"n": 2}, key="CA1:webhook"), HttpJob(url, {"n": 3})
    )
    assert second[0] == first[0]
    assert second[1] != first[0]
    async with store.read() as repos:
        page = await repos.jobs.page(ws, JobFilter(call_id="CA1"), limit=10, cursor=None)
    assert sorted(j.payload["body"]["n"] for j in page.items) == [1, 3]


async def test_a_rolled_back_transaction_enqueues_nothing(store: SqlStore, ws: Workspace) -> None:
    class Boom(Exception):
        pass

    async def record_the_call_then_fail() -> None:
        async with store.write() as repos:
            await repos.jobs.enqueue(ws, "CA9", [HttpJob("https://hooks.example/x", {})])
            raise Boom

    with pytest.raises(Boom):
        await record_the_call_then_fail()
    async with store.read() as repos:
        page = await repos.jobs.page(ws, JobFilter(call_id="CA9"), limit=10, cursor=None)
    assert page.items == []


async def test_secrets_are_encrypted_at_rest_and_sent(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    token = "Bearer sk_live_9f8e7d6c5b4a"
    fn = Function.model_validate(
        {
            "name": "update_crm",
            "phase": "post_call",
            "parameters": {"type": "object", "properties": {"outcome": {"type": "string"}}},
            "action": {
                "method": "POST",
                "url": receiver.url + "/crm",
                "api_token": "tok_crm_secret_1234",
            },
        }
    )
    ctx = CallContext(call_sid="CA1", variables={"crm_password": "pw-hidden-5678"})
    ids = await _enqueue(
        store,
        ws,
        HttpJob(receiver.url + "/hook", {"a": 1}, headers={"Authorization": token}),
        FunctionJob(fn, {"outcome": "sold"}, ctx),
        TaskJob("no.such.task", {"x": 1}, secret={"llm_key": "sk-task-secret-42"}, max_attempts=1),
    )
    async with store.db.read() as session:
        rows = (await session.execute(text("SELECT payload, sealed FROM jobs"))).all()
    stored = " ".join(str(value) for row in rows for value in row)
    for secret in (token, "tok_crm_secret_1234", "pw-hidden-5678", "sk-task-secret-42"):
        assert secret not in stored
    await settled(store, ws, ids[:2])
    assert receiver.at("/hook")[0].header("Authorization") == token
    assert receiver.at("/crm")[0].header("Authorization") == "tok_crm_secret_1234"


async def test_a_post_call_http_function_signed_on_request(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    fn = Function.model_validate(
        {
            "name": "send_follow_up",
            "phase": "post_call",
            "parameters": {
                "type": "object",
                "properties": {"phone": {"type": "string"}, "when": {"type": "string"}},
                "required": ["phone"],
            },
            "action": {
                "method": "POST",
                "url": receiver.url + "/follow-up",
                "param": {"to": "%(phone)s", "date": "%(when)s", "agent": "{agent_id}"},
            },
        }
    )
    ctx = CallContext(agent_id="agent_1", call_sid="CA7")
    args = {"phone": "+15551234567", "when": "2027-01-02"}
    ids = await _enqueue(
        store,
        ws,
        FunctionJob(fn, args, ctx, sign=True),
        FunctionJob(fn.model_copy(update={"name": "unsigned"}), args, ctx),
    )
    await settled(store, ws, ids)
    signed, unsigned = sorted(
        receiver.at("/follow-up"), key=lambda a: a.header("webhook-id") is None
    )
    assert signed.json == {"to": "+15551234567", "date": "2027-01-02", "agent": "agent_1"}
    assert signed.header("Idempotency-Key") == ids[0]
    verify(signed.headers, signed.body, await _workspace_secret(store, ws))
    assert unsigned.header("webhook-signature") is None
    assert unsigned.header("Idempotency-Key") == ids[1]


async def test_a_function_job_with_bad_arguments_is_final(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    fn = Function.model_validate(
        {
            "name": "needs_phone",
            "phase": "post_call",
            "parameters": {
                "type": "object",
                "properties": {"phone": {"type": "string"}},
                "required": ["phone"],
            },
            "action": {"method": "POST", "url": receiver.url + "/never"},
        }
    )
    [job_id] = await _enqueue(store, ws, FunctionJob(fn, {}, CallContext()))
    [job] = await settled(store, ws, [job_id], ("dead",))
    assert job.attempts == 1
    assert "missing" in (job.last_error or "")
    assert receiver.at("/never") == []


async def test_an_agent_key_signs_its_webhooks_and_rotation_signs_with_both(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    async with store.write() as repos:
        old = await repos.signing_keys.create(ws, "agent_7")
    [first] = await _enqueue(store, ws, HttpJob(receiver.url + "/a", {"n": 1}, agent_id="agent_7"))
    await settled(store, ws, [first])
    async with store.write() as repos:
        new = await repos.signing_keys.create(ws, "agent_7", expire_others_in_s=3600)
    worker.forget_signing(ws.id)
    [second] = await _enqueue(store, ws, HttpJob(receiver.url + "/a", {"n": 2}, agent_id="agent_7"))
    await settled(store, ws, [second])
    one, two = receiver.at("/a")
    verify(one.headers, one.body, old.secret)
    with pytest.raises(WebhookVerificationError):
        verify(one.headers, one.body, new.secret)
    assert len(two.header("webhook-signature").split()) == 2  # type: ignore[union-attr]
    verify(two.headers, two.body, old.secret)  # receivers not yet switched
    verify(two.headers, two.body, new.secret)  # receivers already switched
    assert await _workspace_secret(store, ws) == []  # the agent's keys, not the workspace's


# ---------------------------------------------------------------------- tasks

CALLS: dict[str, int] = {}


@task("test.extract")
async def _extract(ctx: TaskContext) -> dict[str, Any]:
    CALLS[ctx.job_id] = CALLS.get(ctx.job_id, 0) + 1
    url = ctx.payload["url"]
    ctx.enqueue([HttpJob(url, {"summary": "ok", "call": ctx.call_id}, name="agent_webhook")])
    if ctx.attempt == 1:
        raise RetryLater("the LLM endpoint is busy", after_s=0.01)
    return {"summary": "ok", "attempt": ctx.attempt}


@task("test.hopeless")
async def _hopeless(ctx: TaskContext) -> None:
    raise FinalFailure("the transcript is empty")


async def test_a_task_enqueues_follow_ups_once_with_its_success(
    store: SqlStore, ws: Workspace, receiver: Receiver, worker: JobWorker
) -> None:
    url = receiver.url + "/after-extraction"
    [job_id] = await _enqueue(store, ws, TaskJob("test.extract", {"url": url}), call_id="CA5")
    [job] = await settled(store, ws, [job_id])
    assert job.result == {"summary": "ok", "attempt": 2}
    assert CALLS[job_id] == 2  # the first attempt's follow-ups were not kept
    async with store.read() as repos:
        page = await repos.jobs.page(ws, JobFilter(call_id="CA5"), limit=10, cursor=None)
    follow_ups = [j for j in page.items if j.id != job_id]
    assert len(follow_ups) == 1
    assert follow_ups[0].key == f"{job_id}/0"
    await settled(store, ws, [follow_ups[0].id])
    assert [a.json for a in receiver.at("/after-extraction")] == [{"summary": "ok", "call": "CA5"}]


async def test_a_task_final_failure_and_an_unknown_task(
    store: SqlStore, ws: Workspace, worker: JobWorker
) -> None:
    ids = await _enqueue(
        store, ws, TaskJob("test.hopeless"), TaskJob("test.unregistered", max_attempts=2)
    )
    hopeless, unknown = await settled(store, ws, ids, ("dead",))
    assert hopeless.attempts == 1
    assert hopeless.last_error == "the transcript is empty"
    assert unknown.attempts == 2
    assert "no task named" in (unknown.last_error or "")


# ---------------------------------------------------------------------- many workers


async def test_two_workers_share_the_work_and_deliver_each_job_once(
    store: SqlStore, ws: Workspace, receiver: Receiver, executor: Executor
) -> None:
    async def executor_for(_: str) -> Executor:
        return executor

    workers = [
        JobWorker(store, executor_for=executor_for, policy=FAST, poll_s=0.05, concurrency=8)
        for _ in range(2)
    ]
    url = receiver.url + "/many"
    ids: list[str] = []
    for start in range(0, 200, 50):
        ids += await _enqueue(
            store, ws, *[HttpJob(url, {"n": n}) for n in range(start, start + 50)]
        )
    await asyncio.gather(*(w.start() for w in workers))
    try:
        await settled(store, ws, ids)
    finally:
        await asyncio.gather(*(w.stop() for w in workers))
    arrivals = receiver.at("/many")
    assert sorted(a.json["n"] for a in arrivals) == list(range(200))  # none twice
    assert all(w.delivered > 0 for w in workers)
    assert sum(w.delivered for w in workers) == 200
