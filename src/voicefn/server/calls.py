"""Finished calls on the platform, and their post-call work as durable jobs.

A host (a voice stack running its calls through the execute endpoint, the dashboard's test call)
reports a finished call: :func:`report_call` stores it and, **in the same transaction**, the
first job of its :class:`~voicefn.runtime.postcall.PostCallPlan`: the task
:data:`POST_CALL_TASK`. A worker of :mod:`voicefn.jobs` runs that task (:func:`post_call_task`):
the extraction (one LLM request; retried while the LLM fails, up to :data:`EXTRACT_ATTEMPTS`),
then, committed atomically with the task's success, one :class:`~voicefn.jobs.FunctionJob` per
post-call function (its mapped arguments) and the agent webhook's
:class:`~voicefn.jobs.HttpJob` (the execution record, signed). Every job has a key derived from
the call, so a task that runs twice enqueues them once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..jobs.model import FinalFailure, FunctionJob, HttpJob, Job, JobRecord, RetryLater, TaskJob
from ..jobs.tasks import TaskContext, task
from ..redaction import Redactor
from ..runtime.postcall import (
    ENDED_BY,
    Extraction,
    FinishedCall,
    PostCallPlan,
    check_answer,
    expand,
    extract,
    record_for,
    stored_values,
    wants_extraction,
)
from ..spec import Function
from ..store import AgentRecord, ExecutionRecord, Workspace
from ..store.secrets import MASK, agent_places, seal, secret_values, unseal
from ..store.sql.calls import CallRecord, NewCall
from ..store.sql.jobs import JobFilter
from ..validation import Problem
from .documents import check_json
from .errors import invalid, not_found

if TYPE_CHECKING:
    from ..runtime.agent import Agent
    from .platform import Platform

log = logging.getLogger("voicefn.server")

#: The task that runs a finished call's post-call work (registered when this module loads).
POST_CALL_TASK = "voicefn.post_call"
#: How many times the task asks a failing LLM before it goes on without the extraction (the
#: functions that need no extracted value and the webhook still go).
EXTRACT_ATTEMPTS = 3

Text = Annotated[str, Field(max_length=200)]
Number = Annotated[str, Field(max_length=64)]


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["caller", "agent"]
    text: Annotated[str, Field(max_length=20_000)]


class ExecutionIn(BaseModel):
    """A pre-call or in-call execution, as the host's runtime saw it."""

    model_config = ConfigDict(extra="forbid")

    function: Annotated[str, Field(max_length=64)]
    phase: Literal["pre_call", "in_call"] = "in_call"
    tool_call_id: Text | None = None
    arguments: dict[str, Any] | str = Field(default_factory=dict)
    ok: bool
    status: int | None = None
    error: Annotated[str, Field(max_length=64)] | None = None
    latency_ms: Annotated[float, Field(ge=0)] = 0.0
    timings: dict[str, float | None] = Field(default_factory=dict)
    stored: dict[str, Any] = Field(default_factory=dict)
    content: Annotated[str, Field(max_length=16_384)] = Field(
        default="", description="what the LLM read"
    )


class CallReport(BaseModel):
    """A finished call: who, when, how it ended, what was said, the variables at its end."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "call_sid": "CA1234",
                    "from_number": "+15550100",
                    "to_number": "+15550199",
                    "started_at": "2026-12-01T10:00:00Z",
                    "ended_at": "2026-12-01T10:02:30Z",
                    "ended_by": "caller",
                    "variables": {"customer_name": "Priya", "order_status": "shipped"},
                    "transcript": [
                        {"role": "agent", "text": "Hi Priya, how can I help?"},
                        {"role": "caller", "text": "Where is my order ORD-78234?"},
                    ],
                }
            ]
        },
    )

    call_sid: Text | None = Field(
        default=None,
        description="The telephony call id (the context's call_sid on the execute endpoint). "
        "A call is stored once per agent and call id: reporting it again returns the first.",
    )
    execution_id: Text | None = Field(
        default=None, description="The call's execution id, when there is no call_sid"
    )
    from_number: Number | None = None
    to_number: Number | None = None
    language: Annotated[str, Field(max_length=20)] | None = None
    started_at: dt.datetime
    ended_at: dt.datetime
    ended_by: Literal["caller", "agent", "transfer", "system"] = "caller"
    transfer_number: Number | None = None
    variables: dict[str, Any] = Field(
        default_factory=dict,
        description="The call's variables at its end (dynamic ones and what functions "
        "stored); the agent's own fill in the rest",
    )
    transcript: Annotated[list[TurnIn], Field(max_length=5_000)] = Field(default_factory=list)
    executions: Annotated[list[ExecutionIn], Field(max_length=1_000)] | None = Field(
        default=None,
        description="The call's pre-call and in-call executions. Absent: the ones the "
        "execute endpoint recorded with this call_sid (their store: values join the "
        "variables the report does not give)",
    )

    @classmethod
    def from_finished(cls, call: FinishedCall) -> CallReport:
        """The report of a call a :class:`~voicefn.runtime.CallSession` ran in this process
        (``session.finished_call()``): the dashboard's test call."""
        return cls.model_validate(
            {
                "call_sid": call.call_sid,
                "execution_id": call.execution_id,
                "from_number": call.from_number,
                "to_number": call.to_number,
                "language": call.language,
                "started_at": dt.datetime.fromtimestamp(call.started_at, dt.UTC),
                "ended_at": dt.datetime.fromtimestamp(max(call.ended_at, call.started_at), dt.UTC),
                "ended_by": call.ended_by,
                "transfer_number": call.transfer_number,
                "variables": call.variables,
                "transcript": call.transcript,
                "executions": [
                    {k: v for k, v in e.items() if k in ExecutionIn.model_fields}
                    for e in call.executions
                ],
            }
        )

    @model_validator(mode="after")
    def _check(self) -> CallReport:
        if not self.call_sid and not self.execution_id:
            raise ValueError("give call_sid (or execution_id): the id of the call")
        if _aware(self.ended_at) < _aware(self.started_at):
            raise ValueError("ended_at is before started_at")
        return self


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _us(value: dt.datetime) -> int:
    return int(_aware(value).timestamp() * 1_000_000)


@dataclass(frozen=True)
class Reported:
    call: CallRecord
    #: False when this agent had already reported this call (nothing new was stored)
    created: bool
    jobs: list[JobRecord]


def _secret_names(agent: AgentRecord, variables: Mapping[str, Any]) -> list[str]:
    declared = agent.document.get("variables") or {}
    marked = [k for k, v in declared.items() if v == MASK]
    return [p[1] for p in agent_places({"variables": dict(variables)}, marked)]


def _execution_of(r: ExecutionRecord) -> dict[str, Any]:
    return {
        "function": r.function_name,
        "phase": "in_call",
        "tool_call_id": r.tool_call_id,
        "arguments": r.arguments if r.arguments is not None else {},
        "ok": r.ok,
        "status": r.status,
        "error": r.error,
        "latency_ms": r.total_ms,
        "timings": {"request_ms": (r.timings or {}).get("request_ms")},
        "deduplicated": False,
        "stored": {},
        "content": r.result,
    }


def _apply_store(
    executions: list[dict[str, Any]], functions: Mapping[str, Function]
) -> dict[str, Any]:
    """``store:`` applied to the results the platform recorded (what the LLM read: JSON)."""
    from ..results import ToolResult

    found: dict[str, Any] = {}
    for e in executions:
        function = functions.get(str(e.get("function")))
        if function is None or not function.store or not e.get("ok"):
            continue
        result = ToolResult(function.name, True, e.get("content") or "")
        try:
            result.data = json.loads(result.content)
        except ValueError:
            continue
        values = stored_values(function, result)
        e["stored"] = values
        found.update(values)
    return found


async def report_call(
    platform: Platform, ws: Workspace, agent_id: str, report: CallReport
) -> Reported:
    """Store a finished call and its post-call job in one transaction (see the module)."""
    odd = check_json(report.model_dump(mode="json", exclude_none=True))
    if odd:
        raise invalid(odd)
    async with platform.store.read() as repos:
        agent = await repos.agents.get(ws, agent_id)
        functions = await repos.functions.all(ws, agent_id) if agent is not None else []
    if agent is None:
        raise not_found(f"agent {agent_id}")
    settings = unseal(agent.document, agent.secrets)
    runnable = {f.name: Function.model_validate(unseal(f.document, f.secrets)) for f in functions}
    if report.executions is not None:
        executions = [e.model_dump() for e in report.executions]
        stored: dict[str, Any] = {}
    else:
        await platform.recorder.flush()  # this process's latest executions are stored
        async with platform.store.read() as repos:
            recorded = await repos.calls.executions_of(ws, agent_id, report.call_sid or "")
        executions = [_execution_of(r) for r in recorded] if report.call_sid else []
        stored = _apply_store(executions, runnable)
    variables = {**(settings.get("variables") or {}), **stored, **report.variables}
    names = _secret_names(agent, variables)
    masked, secrets, _ = seal({"variables": variables}, [("variables", n) for n in names], {})
    redactor = Redactor(secret_values(secrets))
    started, ended = _us(report.started_at), _us(report.ended_at)
    snapshot = [
        {"id": f.id, "name": f.name, "version": f.version}
        for f in functions
        if f.document.get("phase") == "post_call"
    ]
    transcript = [t.model_dump() for t in report.transcript]
    if redactor:
        transcript = [{**t, "text": redactor.text(t["text"])} for t in transcript]
        for e in executions:
            e["content"] = redactor.text(str(e.get("content") or ""))
    new = NewCall(
        agent_id=agent_id,
        external_id=report.call_sid or report.execution_id or "",
        execution_id=report.execution_id or report.call_sid or "",
        call_sid=report.call_sid,
        from_number=report.from_number,
        to_number=report.to_number,
        language=report.language or str(settings.get("language") or "en"),
        started_us=started,
        ended_us=ended,
        ended_by=report.ended_by,
        transfer_number=report.transfer_number,
        transcript=transcript,
        variables=masked["variables"],
        secrets=secrets,
        executions=executions,
        functions=snapshot,
    )
    async with platform.store.write() as repos:
        record, created = await repos.calls.add(ws, new)
        if created:
            job = TaskJob(
                POST_CALL_TASK,
                payload={"call_id": record.id, "agent_id": agent_id},
                name="post_call",
                key=f"{record.id}:post_call",
            )
            await repos.jobs.enqueue(ws, record.id, [job])
    return Reported(record, created, await call_jobs(platform, ws, record.id))


async def call_jobs(platform: Platform, ws: Workspace, call_id: str) -> list[JobRecord]:
    """A call's jobs, oldest first, each with its attempts."""
    async with platform.store.read() as repos:
        page = await repos.jobs.page(ws, JobFilter(call_id=call_id), limit=200, cursor=None)
        found = [await repos.jobs.get(ws, j.id) for j in reversed(page.items)]
    return [j for j in found if j is not None]


async def check_mapping(
    platform: Platform, ws: Workspace, agent_id: str, document: Mapping[str, Any], dialect: str
) -> list[Problem]:
    """A post-call function's mapping against its agent (the function routes' 422): sources
    its agent does not declare, types that do not fit. Returns the warnings."""
    if document.get("phase") != "post_call" or not document.get("mapping"):
        return []
    from ..runtime.postcall_spec import mapping_problems, stored_names

    async with platform.store.read() as repos:
        agent = await repos.agents.get(ws, agent_id)
        functions = await repos.functions.all(ws, agent_id) if agent is not None else []
    if agent is None:
        return []  # the route says the agent is not there
    function = Function.model_validate(document)
    problems = mapping_problems(
        function, agent.document, stored=stored_names(f.document for f in functions)
    )
    if any(p.severity == "error" for p in problems):
        raise invalid(problems, dialect)
    return problems


# ------------------------------------------------------------------------------ the task


def agent_of(record: AgentRecord, functions: Sequence[Function]) -> Agent:
    """The runtime Agent of a stored agent (its secrets in place) with these functions."""
    from ..runtime.agent import Agent

    settings = unseal(record.document, record.secrets)
    return Agent.model_validate({**settings, "functions": list(functions)})


def finished_call(ws: Workspace, call: CallRecord, agent: Agent) -> FinishedCall:
    """The stored call as post-call work sees it (secret variables in place)."""
    variables = unseal({"variables": call.variables}, call.secrets)["variables"]
    return FinishedCall(
        execution_id=call.execution_id,
        agent_id=call.agent_id,
        call_sid=call.call_sid,
        from_number=call.from_number,
        to_number=call.to_number,
        language=call.language,
        started_at=call.started_us / 1_000_000,
        ended_at=call.ended_us / 1_000_000,
        ended_by=call.ended_by if call.ended_by in ENDED_BY else "caller",
        transfer_number=call.transfer_number,
        variables=dict(variables),
        transcript=list(call.transcript),
        executions=list(call.executions),
        workspace_id=ws.id,
        webhook_url=agent.webhook_url,
    )


def masked_names(call: CallRecord) -> list[str]:
    return [k for k, v in call.variables.items() if v == MASK]


async def _load(
    platform: Platform, ws: Workspace, call_id: str
) -> tuple[CallRecord, AgentRecord, list[Function]]:
    async with platform.store.read() as repos:
        call = await repos.calls.get(ws, call_id)
        if call is None:
            raise FinalFailure(f"call {call_id} is gone")
        agent = await repos.agents.get(ws, call.agent_id)
        if agent is None:
            raise FinalFailure(f"agent {call.agent_id} was deleted")
        functions: list[Function] = []
        for f in call.functions:
            version = await repos.functions.version(ws, call.agent_id, f["id"], f["version"])
            if version is None:
                log.warning("call %s: post-call function %s was deleted", call_id, f["name"])
                continue
            functions.append(Function.model_validate(unseal(version.document, version.secrets)))
    return call, agent, functions


async def _extract(
    platform: Platform, ws: Workspace, agent: Agent, call: FinishedCall
) -> tuple[Extraction, bool]:
    """The extraction, on the service: as the dashboard's test calls reach the LLM. An agent
    that names its own ``llm.base_url`` gets no key of the server's (its ``api_key_env`` is
    never read here: a tenant must not make the server send one of its environment variables),
    and the URL must pass the workspace's egress policy; otherwise the server's
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``. Returns the extraction and whether asking again
    may help (not after a refused URL)."""
    import os
    from urllib.parse import urlsplit

    from ..egress import EgressDenied, EgressPolicy
    from ..runtime.llm_client import DEFAULT_BASE_URL, LLMClient
    from ..transport import EgressResolver

    settings = agent.llm
    model = settings.model or os.environ.get("VOICEFN_LLM_MODEL") or os.environ.get("OPENAI_MODEL")
    server_url = (os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    own = (settings.base_url or "").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY", "")
    if own and own != server_url:
        key = ""
        policy = await platform.catalog.policy(ws)
        egress = EgressPolicy.from_strings(
            policy.allow,
            allow_private_network=policy.allow_private_network,
            https_only=policy.https_only,
        )
        try:
            egress.check_url(own)
            host, port = urlsplit(own).hostname, urlsplit(own).port
            if host and not egress.allow_private_network:  # where the name leads, too
                await EgressResolver(egress).resolve(host, port or 443)
        except EgressDenied as exc:
            why = f"the LLM base URL is refused by this workspace's egress settings: {exc}"
            return Extraction(check_answer(agent, None), ok=False, error=why), False
        except OSError as exc:
            why = f"the LLM base URL's host cannot be resolved: {exc}"
            return Extraction(check_answer(agent, None), ok=False, error=why), True
    url = own or server_url
    agent = agent.model_copy(
        update={"llm": settings.model_copy(update={"model": model, "base_url": url})}
    )
    async with LLMClient(
        url, key, timeout_s=settings.timeout_s, max_retries=settings.max_retries, max_connections=4
    ) as client:
        return await extract(agent, call, client), True


@task(POST_CALL_TASK)
async def post_call_task(ctx: TaskContext) -> dict[str, Any]:
    """Extract, then enqueue each post-call function's job and the agent webhook's."""
    platform: Platform = ctx.services["platform"]
    ws = Workspace(ctx.workspace_id, "")
    call, stored_agent, functions = await _load(platform, ws, str(ctx.payload["call_id"]))
    agent = agent_of(stored_agent, functions)
    finished = finished_call(ws, call, agent)
    extraction: Extraction | None = None
    if wants_extraction(agent):
        extraction, retryable = await _extract(platform, ws, agent, finished)
        if extraction.error and retryable and ctx.attempt < EXTRACT_ATTEMPTS:
            raise RetryLater(f"the extraction failed: {extraction.error}")
        values = extraction.values
        async with platform.store.write() as repos:
            await repos.calls.set_extraction(
                ws,
                call.id,
                extraction.to_dict(),
                summary=values.get("summary"),
                outcome=values.get("outcome"),
            )
    plan = PostCallPlan.build(agent, finished, prefix=call.id)
    works, webhook = expand(
        agent, finished, extraction or Extraction(), plan, mask=masked_names(call)
    )
    jobs: list[Job] = [
        FunctionJob(w.function, w.arguments, w.context, name=w.function.name, key=w.key)
        for w in works
        if not w.missing
    ]
    if webhook is not None:
        jobs.append(
            HttpJob(
                webhook.url,
                body=webhook.record,
                name="agent_webhook",
                agent_id=call.agent_id,
                key=webhook.key,
            )
        )
    ctx.enqueue(jobs)
    return {
        "extraction": extraction.to_dict() if extraction is not None else None,
        "plan": plan.to_dict(),
        "skipped": [
            {"function": w.function.name, "missing": [p for p, _, _ in w.missing]}
            for w in works
            if w.missing
        ],
    }


def current_record(
    call: CallRecord, agent: AgentRecord | None, jobs: Sequence[JobRecord] = ()
) -> dict[str, Any] | None:
    """The execution record of a stored call as it stands: the extraction once it ran, each
    post-call function's job state (None when the agent is gone)."""
    if agent is None:
        return None
    try:
        runtime_agent = agent_of(agent, [])
    except ValueError:
        return None
    finished = finished_call(Workspace("", ""), call, runtime_agent)
    extraction = Extraction.from_dict(call.extraction) if call.extraction else None
    by_key = {j.key: j for j in jobs}
    planner = by_key.get(f"{call.id}:post_call")
    planned = {"succeeded": "skipped", "dead": "failed"}.get(planner.state if planner else "")
    post: list[dict[str, Any]] = []
    for f in call.functions:
        job = by_key.get(f"{call.id}:post_call:function:{f['name']}")
        if job is None:  # not enqueued (yet): the task still runs, or left it out
            post.append({"function": f["name"], "state": planned or "queued"})
            continue
        done = {"succeeded": "succeeded", "dead": "failed"}.get(job.state, "queued")
        post.append(
            {
                "function": f["name"],
                "state": done,
                "ok": job.state == "succeeded" if done != "queued" else None,
                "status": job.last_status,
                "error": job.last_error,
            }
        )
    return record_for(runtime_agent, finished, extraction, post, mask=masked_names(call))


__all__ = [
    "EXTRACT_ATTEMPTS",
    "POST_CALL_TASK",
    "CallReport",
    "ExecutionIn",
    "Reported",
    "TurnIn",
    "call_jobs",
    "check_mapping",
    "current_record",
    "post_call_task",
    "report_call",
]
