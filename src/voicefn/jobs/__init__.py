"""Durable delivery: post-call work as jobs in the platform's database, delivered at least once.

When a call ends, its post-call work (the extraction, each post-call function, the agent webhook)
is written as jobs **in the same transaction that records the call**; workers then deliver each
one at least once, with the same idempotency key on every attempt, retries with exponential
backoff and full jitter, ``Retry-After`` honoured, and a dead-letter state after a configurable
number of attempts. Nothing is sent before the transaction commits; nothing is lost when a
process dies (a job a dead worker held comes back when its lease ends).

Enqueue (in the transaction that records the call)::

    from voicefn.jobs import FunctionJob, HttpJob, TaskJob

    async with store.write() as repos:          # a voicefn.store.SqlStore
        ...                                      # record the call here
        ids = await repos.jobs.enqueue(ws, call_id, [
            TaskJob("postcall.extract", payload={...}, key=f"{call_id}:extract"),
            FunctionJob(function, arguments, context, key=f"{call_id}:fn:update_crm"),
            HttpJob(agent_webhook_url, body=execution_record, agent_id=agent_id,
                    name="agent_webhook", key=f"{call_id}:webhook"),
        ])

(``voicefn.jobs.enqueue(repos, ws, call_id, jobs)`` is the same call.) A ``key`` makes enqueueing
idempotent: the workspace's second job with that key is not created, and its id is returned.

The three kinds (:mod:`voicefn.jobs.model`):

* :class:`HttpJob` -- one HTTP request (JSON body), signed per Standard Webhooks with the agent's
  or the workspace's signing key (:mod:`voicefn.webhooks`). Headers ``webhook-id`` (= the
  idempotency key), ``webhook-timestamp``, ``webhook-signature`` and ``Idempotency-Key``.
* :class:`FunctionJob` -- a voicefn Function run with arguments in a CallContext through the
  workspace's :class:`~voicefn.Executor` (an HTTP function's request carries ``Idempotency-Key``,
  and the signature headers with ``sign=True``).
* :class:`TaskJob` -- a coroutine registered by name, for work that is neither (the AI
  extraction). A task may enqueue follow-up jobs, committed atomically with its own success
  (give them keys: a task that runs twice then enqueues them once)::

      from voicefn.jobs import TaskContext, task

      @task("postcall.extract")
      async def extract(ctx: TaskContext) -> dict[str, Any]:
          values = ...                            # ctx.payload, ctx.secret, ctx.services["llm"]
          ctx.enqueue([FunctionJob(...), HttpJob(...)])
          return values                           # stored as the job's result

  Raise :class:`RetryLater` (optionally ``after_s``) to retry, :class:`FinalFailure` to
  dead-letter at once; any other exception is retried.

Retries (:class:`RetryPolicy`): delay ``min(cap, base * 2**(n-1))`` with full jitter, or the
receiver's ``Retry-After`` (seconds or an HTTP date, capped); 2xx is done; 408, 425, 429, 5xx
and no answer are retried; any other 4xx (and a refused address, a bad URL) is final. After
``max_attempts`` (default 8, per job or per worker) the job is ``dead``: listed by
``GET /v1/jobs?state=dead`` and ``voicefn jobs list --state dead``, sent again by
``POST /v1/jobs/{id}/redeliver`` / ``voicefn jobs redeliver ID`` (a fresh budget of attempts).

Workers (:class:`JobWorker`) run inside ``voicefn serve`` (every process: they share the work)::

    worker = JobWorker(store, executor_for=lambda ws_id: executor, policy=RetryPolicy())
    await worker.start()   # ... await worker.stop()

Claims: PostgreSQL ``SELECT ... FOR UPDATE SKIP LOCKED`` (many processes, many machines;
``LISTEN``/``NOTIFY`` wakes them); SQLite: one writer at a time (``BEGIN IMMEDIATE``) claims a
batch. A claim is a lease: a running job whose worker died is due again when the lease ends.

Names are imported when first used, so ``import voicefn.jobs`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..store.protocol import Repos
    from ..store.records import Workspace
    from .model import (
        AttemptRecord,
        FinalFailure,
        FunctionJob,
        HttpJob,
        Job,
        JobRecord,
        RetryLater,
        TaskJob,
    )
    from .retry import RetryPolicy
    from .tasks import TaskContext, task
    from .worker import JobWorker

_WHERE = {
    "AttemptRecord": "model",
    "FinalFailure": "model",
    "FunctionJob": "model",
    "HttpJob": "model",
    "Job": "model",
    "JobRecord": "model",
    "RetryLater": "model",
    "TaskJob": "model",
    "RetryPolicy": "retry",
    "TaskContext": "tasks",
    "task": "tasks",
    "JobWorker": "worker",
}


async def enqueue(
    repos: Repos,
    ws: Workspace,
    call_id: str | None,
    jobs: Sequence[Job],
    *,
    delay_s: float = 0.0,
) -> list[str]:
    """Persist ``jobs`` in the transaction of ``repos`` (``async with store.write() as repos``);
    returns their ids. Workers hear of them when that transaction commits."""
    return await repos.jobs.enqueue(ws, call_id, jobs, delay_s=delay_s)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voicefn.jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})


__all__ = [
    "AttemptRecord",
    "FinalFailure",
    "FunctionJob",
    "HttpJob",
    "Job",
    "JobRecord",
    "JobWorker",
    "RetryLater",
    "RetryPolicy",
    "TaskContext",
    "TaskJob",
    "enqueue",
    "task",
]
