"""One attempt at one job: send it, and say what happened (done, retry, or final).

Every HTTP request goes through :func:`voicefn.outbound.fetch` on the workspace Executor's
transport (its egress policy on every hop). The job's id is its idempotency key: the
``Idempotency-Key`` header and, when signed, ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from ..decoding import ACCEPT_ENCODING
from ..outbound import FetchFailed, Request, fetch, url_problem
from .model import FinalFailure, FunctionJob, HttpJob, Job, Outcome, RetryLater, TaskJob
from .retry import final_status, parse_retry_after
from .tasks import TaskContext, lookup

if TYPE_CHECKING:
    from ..executor import Executor

log = logging.getLogger("voicefn.jobs")

#: How much of an answer is read (and kept, cut to RESULT_EXCERPT, as the job's result).
RESPONSE_MAX_BYTES = 64 * 1024
RESULT_EXCERPT = 2048
#: Reasons a request failed that retrying will not change.
_FINAL_REASONS = frozenset({"blocked", "redirects", "template", "invalid_url"})


@dataclass(slots=True)
class Attempt:
    """What one attempt came to."""

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None
    result: Any = None
    follow_up: list[Job] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Delivery:
    """Everything an attempt needs besides the job itself."""

    job_id: str
    workspace_id: str
    call_id: str | None
    attempt: int
    executor: Executor
    #: the secrets that sign it (empty: unsigned)
    signing: Sequence[str]
    services: Mapping[str, Any]


def _json_bytes(body: Any) -> bytes:
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _excerpt(body: bytes) -> str:
    return body[:RESULT_EXCERPT].decode("utf-8", "replace")


def signed_headers(d: Delivery, body: bytes) -> list[tuple[str, str]]:
    """``Idempotency-Key`` and, with signing secrets, the Standard Webhooks headers."""
    out = [("Idempotency-Key", d.job_id)]
    if d.signing:
        from ..webhooks import signature_headers

        out += list(signature_headers(d.job_id, body, d.signing).items())
    return out


async def send(d: Delivery, request: Request, timeout_s: float) -> Attempt:
    """Send ``request`` once and classify the answer."""
    executor = d.executor
    try:
        async with asyncio.timeout(timeout_s):
            response = await fetch(
                executor.transport,
                request,
                max_body=RESPONSE_MAX_BYTES,
                max_redirects=executor.http.max_redirects,
            )
    except TimeoutError:
        return Attempt("retry", error=f"no response within {timeout_s:g} s")
    except FetchFailed as exc:
        if exc.status is None:
            outcome: Outcome = "final" if exc.reason in _FINAL_REASONS else "retry"
            return Attempt(outcome, error=f"{exc.reason}: {exc.detail}")
        return _answer(exc.status, b"", None)  # an answer too long (or undecodable) is an answer
    except Exception as exc:
        from ..actions.http import describe_send_error

        reason, detail = describe_send_error(exc, request.url)
        outcome = "final" if reason in _FINAL_REASONS else "retry"
        return Attempt(outcome, error=f"{reason}: {detail}")
    retry_after = response.headers.get("retry-after") or response.headers.get("Retry-After")
    return _answer(response.status, response.body, retry_after)


def _answer(status: int, body: bytes, retry_after: str | None) -> Attempt:
    result = {"status": status, "body": _excerpt(body)} if body else {"status": status}
    if 200 <= status < 300:
        return Attempt("ok", status=status, result=result)
    if final_status(status):
        return Attempt("final", status=status, error=f"the endpoint answered {status}")
    return Attempt(
        "retry",
        status=status,
        error=f"the endpoint answered {status}",
        retry_after_s=parse_retry_after(retry_after),
    )


async def deliver(job: Job, d: Delivery) -> Attempt:
    try:
        if isinstance(job, HttpJob):
            return await _http(job, d)
        if isinstance(job, FunctionJob):
            return await _function(job, d)
        return await _task(job, d)
    except RetryLater as exc:
        return Attempt("retry", error=exc.reason[:500], retry_after_s=exc.after_s)
    except FinalFailure as exc:
        return Attempt("final", error=exc.reason[:500])


_URLS: dict[str, tuple[str, str | None]] = {}


def _checked(raw: str) -> tuple[str, str | None]:
    """The URL as sent, and why it cannot be (None: it can); remembered (webhook URLs repeat)."""
    known = _URLS.get(raw)
    if known is not None:
        return known
    try:
        url = str(httpx.URL(raw))
        problem = url_problem(httpx.URL(url))
    except Exception as exc:
        url, problem = raw, str(exc) or type(exc).__name__
    if len(_URLS) > 4096:
        _URLS.clear()
    _URLS[raw] = (url, problem)
    return url, problem


async def _http(job: HttpJob, d: Delivery) -> Attempt:
    url, problem = _checked(job.url)
    if problem is not None:
        return Attempt("final", error=f"the URL cannot be requested ({problem})")
    body = _json_bytes(job.body) if job.body is not None else b""
    headers = [(k, v) for k, v in job.headers.items()]
    names = {k.lower() for k, _ in headers}
    if "content-type" not in names and job.body is not None:
        headers.append(("Content-Type", "application/json"))
    headers.append(("Accept-Encoding", ACCEPT_ENCODING))
    headers += [(k, v) for k, v in signed_headers(d, body) if k.lower() not in names]
    request = Request(job.method.upper(), url, headers, body if job.body is not None else None)
    return await send(d, request, job.timeout_s)


async def _function(job: FunctionJob, d: Delivery) -> Attempt:
    from ..actions.base import Invocation
    from ..arguments import ArgumentError, bind
    from ..results import Timings, ToolResult
    from ..spec import HttpAction

    function = job.function
    ctx = job.context
    if not isinstance(function.action, HttpAction):
        ctx = replace(ctx, variables={**ctx.variables, "idempotency_key": d.job_id})
        result = await d.executor.run(function, dict(job.arguments), ctx, tool_call_id=d.job_id)
        if result.ok:
            return Attempt("ok", result={"content": result.content[:RESULT_EXCERPT]})
        data = result.data if isinstance(result.data, dict) else {}
        why = str(data.get("detail") or result.content)[:500]
        if result.error in ("missing_arguments", "invalid_arguments"):
            return Attempt("final", error=why)
        return Attempt("retry", status=result.status, error=why)
    try:
        bound = bind(function, dict(job.arguments), ctx)
    except ArgumentError as exc:
        return Attempt("final", error=f"{exc.code}: {exc.detail}"[:500])
    variables = ctx.as_variables()
    values = {**variables, **bound.values}
    import time

    inv = Invocation(
        function,
        values,
        variables,
        ctx,
        d.job_id,
        time.perf_counter(),
        ToolResult(function.name, False, "", timings=Timings(started_at=time.time())),
    )
    try:
        request, _ = d.executor.http.build_request(inv)
    except Exception as exc:
        return Attempt("final", error=f"the request could not be built: {exc}"[:500])
    body = request.body or b""
    extra = signed_headers(d, body) if job.sign else [("Idempotency-Key", d.job_id)]
    names = {k.lower() for k, _ in extra}
    request.headers = [(k, v) for k, v in request.headers if k.lower() not in names] + extra
    return await send(d, request, function.action.timeout_ms / 1000)


async def _task(job: TaskJob, d: Delivery) -> Attempt:
    fn = lookup(job.task)
    if fn is None:
        # Perhaps another process knows it: retried (and dead-lettered) like any failure.
        return Attempt("retry", error=f"no task named {job.task!r} is registered here")
    ctx = TaskContext(
        job_id=d.job_id,
        workspace_id=d.workspace_id,
        call_id=d.call_id,
        attempt=d.attempt,
        payload=job.payload,
        secret=job.secret,
        executor=d.executor,
        services=d.services,
    )
    try:
        value = await fn(ctx)
    except (RetryLater, FinalFailure):
        raise
    except Exception as exc:
        log.warning("task %s (job %s) failed: %r", job.task, d.job_id, exc)
        return Attempt("retry", error=f"{type(exc).__name__}: {exc}"[:500])
    return Attempt("ok", result=_jsonable(value), follow_up=list(ctx.follow_up))


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
