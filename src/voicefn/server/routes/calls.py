"""Calls: a host reports a finished call (its post-call work becomes jobs in the same
transaction); calls are listed and shown with their transcript, executions, extraction, post-call
jobs and those jobs' delivery attempts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from ...jobs.model import JobRecord
from ...store import BadCursor
from ...store.sql.calls import CallFilter, CallRecord
from ...validation import Problem
from ..calls import CallReport, call_jobs, current_record, report_call
from ..deps import PlatformDep, WorkspaceDep
from ..errors import invalid, not_found
from ..schemas import ERRORS, ID_PATTERN, AgentId, Cursor, IdFilter, at
from .jobs import AttemptOut, JobOut, _job, attempts_out

router = APIRouter(tags=["calls"], responses=ERRORS)

CallId = Annotated[str, Path(pattern=ID_PATTERN, examples=["call_3f9c0a1b2c3d4e5f"])]
Outcome = Literal["success", "failed", "transferred", "no-answer"]


class CallOut(BaseModel):
    id: str
    agent_id: str
    call_sid: str | None
    execution_id: str
    from_number: str | None
    to_number: str | None
    language: str
    started_at: dt.datetime
    ended_at: dt.datetime
    duration_s: float
    ended_by: Literal["caller", "agent", "transfer", "system"]
    transfer_number: str | None
    extracted: bool = Field(description="the post-call extraction has run")
    summary: str | None
    outcome: Outcome | None
    created_at: dt.datetime


class CallJobOut(JobOut):
    result: Any = Field(description="what the job gave (the post-call task: the extraction)")
    attempt_log: list[AttemptOut]


class CallDetail(CallOut):
    transcript: list[dict[str, Any]]
    variables: dict[str, Any] = Field(description="at the call's end; secrets as [secret]")
    executions: list[dict[str, Any]]
    post_call_functions: list[dict[str, Any]] = Field(
        description="the post-call functions the call runs with: id, name, version"
    )
    extraction: dict[str, Any] | None = Field(
        description="every post-call variable: ok (value), missing or invalid (found)"
    )
    jobs: list[CallJobOut] = Field(description="post-call jobs, oldest first, with attempts")
    record: dict[str, Any] | None = Field(
        description="the execution record as it stands (/v1/schemas/execution-record.json)"
    )


class CallList(BaseModel):
    data: list[CallOut]
    next_cursor: str | None = None


class CallReported(BaseModel):
    call: CallOut
    created: bool = Field(description="false: this call was reported before; nothing new")
    jobs: list[CallJobOut]


def call_out(r: CallRecord) -> CallOut:
    return CallOut(
        id=r.id,
        agent_id=r.agent_id,
        call_sid=r.call_sid,
        execution_id=r.execution_id,
        from_number=r.from_number,
        to_number=r.to_number,
        language=r.language,
        started_at=at(r.started_us),
        ended_at=at(r.ended_us),
        duration_s=round(max(0, r.ended_us - r.started_us) / 1_000_000, 3),
        ended_by=r.ended_by,
        transfer_number=r.transfer_number,
        extracted=r.extraction is not None,
        summary=r.summary,
        outcome=r.outcome,
        created_at=at(r.created_us),
    )


def job_out(r: JobRecord) -> CallJobOut:
    return CallJobOut(
        **_job(r).model_dump(),
        result=r.result,
        attempt_log=attempts_out(r),
    )


@router.post(
    "/v1/agents/{agent_id}/calls",
    status_code=202,
    summary="Report a finished call: its post-call work is queued",
    responses={200: {"model": CallReported, "description": "Reported before: the first report"}},
)
async def report(
    agent_id: AgentId,
    body: CallReport,
    ws: WorkspaceDep,
    platform: PlatformDep,
    response: Response,
) -> CallReported:
    """For hosts that run calls through the execute endpoint (and the dashboard's test call):
    the call's transcript, timings and variables at its end. The call is stored and its
    post-call work (the extraction, each post-call function with its mapping, the agent webhook
    with the execution record) is queued in the same transaction, then delivered at least once
    by the job workers. Without ``executions``, the ones the execute endpoint recorded with this
    ``call_sid`` are used. Reporting the same call again (same agent and call id) changes
    nothing and answers 200 with the first report."""
    reported = await report_call(platform, ws, agent_id, body)
    response.status_code = 202 if reported.created else 200
    return CallReported(
        call=call_out(reported.call),
        created=reported.created,
        jobs=[job_out(j) for j in reported.jobs],
    )


def _us(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1_000_000)


@router.get("/v1/calls", summary="Finished calls, newest first")
async def list_calls(
    ws: WorkspaceDep,
    platform: PlatformDep,
    agent_id: IdFilter = None,
    outcome: Outcome | None = None,
    since: Annotated[dt.datetime | None, Query(description="started at or after")] = None,
    until: Annotated[dt.datetime | None, Query(description="started before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> CallList:
    flt = CallFilter(agent_id, outcome, _us(since), _us(until))
    try:
        async with platform.store.read() as repos:
            page = await repos.calls.page(ws, flt, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise invalid([Problem("query:cursor", str(exc), "pass next_cursor as given")]) from None
    return CallList(data=[call_out(c) for c in page.items], next_cursor=page.next_cursor)


@router.get(
    "/v1/calls/{call_id}",
    summary="A call: transcript, executions, extraction, post-call jobs and their attempts",
)
async def get_call(call_id: CallId, ws: WorkspaceDep, platform: PlatformDep) -> CallDetail:
    async with platform.store.read() as repos:
        call = await repos.calls.get(ws, call_id)
        agent = await repos.agents.get(ws, call.agent_id) if call is not None else None
    if call is None:
        raise not_found(f"call {call_id}")
    jobs = await call_jobs(platform, ws, call.id)
    return CallDetail(
        **call_out(call).model_dump(),
        transcript=call.transcript,
        variables=call.variables,
        executions=call.executions,
        post_call_functions=call.functions,
        extraction=call.extraction,
        jobs=[job_out(j) for j in jobs],
        record=current_record(call, agent, jobs),
    )
