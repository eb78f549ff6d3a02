"""Stored calls: the workspace's finished calls (newest first, a page at a time, by agent and
outcome) and one call's page: transcript, executions, extracted variables, and its post-call
jobs with every delivery attempt. The same store queries as ``GET /v1/calls``."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...jobs.model import JobRecord
from ...store.sql.calls import CallFilter, CallRecord
from ..calls import call_jobs, current_record
from ..routes.calls import Outcome
from . import data
from .auth import PlatformDep, ViewerDep
from .executions import moment
from .render import ID, checked_id, not_found, page

router = APIRouter(include_in_schema=False)

PAGE = 50
OUTCOMES: tuple[str, ...] = get_args(Outcome)


@router.get("/calls")
async def calls_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    q = request.query_params
    chosen = {k: q.get(k, "").strip() for k in ("agent", "outcome", "since", "until")}
    notes: list[str] = []
    if chosen["agent"] and not ID.match(chosen["agent"]):
        notes.append(f"ignored the agent filter {chosen['agent']!r}: not an agent id")
        chosen["agent"] = ""
    if chosen["outcome"] not in ("", *OUTCOMES):
        notes.append(f"ignored the outcome filter {chosen['outcome']!r}: not one of {OUTCOMES}")
        chosen["outcome"] = ""
    flt = CallFilter(
        chosen["agent"] or None,
        chosen["outcome"] or None,
        moment(chosen["since"]) if chosen["since"] else None,
        moment(chosen["until"]) if chosen["until"] else None,
    )
    found, cursor = await data.paged(
        platform,
        lambda repos, at: repos.calls.page(viewer.ws, flt, limit=PAGE, cursor=at),
        q.get("cursor") or None,
        notes,
    )
    agents = await data.agents(platform, viewer.ws)
    filters = {k: v for k, v in chosen.items() if v}
    return page(
        request,
        "calls.html",
        nav="calls",
        rows=found.items,
        names={a.id: a.name for a in agents},
        agents=agents,
        chosen=chosen,
        outcomes=OUTCOMES,
        notes=notes,
        filters=filters,
        next_query={**filters, "cursor": found.next_cursor} if found.next_cursor else None,
        first_page=cursor is None,
    )


def attempts(job: JobRecord) -> list[dict[str, Any]]:
    """A job's attempts as shown: what each came to, and when the next one came (or is due)."""
    log = job.attempt_log
    shown: list[dict[str, Any]] = []
    for i, a in enumerate(log):
        following = log[i + 1].started_us if i + 1 < len(log) else None
        if following is None and a.outcome == "retry" and job.state == "queued":
            following = job.due_us
        if a.outcome == "ok":
            result = "delivered"
        elif a.outcome == "final":
            result = "failed, final"
        elif following is None and job.state == "dead":
            result = "failed, out of attempts"
        else:
            result = "failed, retried"
        shown.append({"attempt": a, "result": result, "next_us": following})
    return shown


async def _execution_ids(
    platform: PlatformDep, viewer: ViewerDep, call: CallRecord
) -> dict[tuple[str, str], str]:
    """The recorded executions of the call, by function and tool call id (for their links)."""
    if not call.call_sid:
        return {}
    await platform.recorder.flush()
    async with platform.store.read() as repos:
        found = await repos.calls.executions_of(viewer.ws, call.agent_id, call.call_sid)
    return {(r.function_name, r.tool_call_id or ""): r.id for r in found}


@router.get("/calls/{stored_call_id}")
async def stored_call_page(
    request: Request, stored_call_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    async with platform.store.read() as repos:
        call = await repos.calls.get(viewer.ws, checked_id(stored_call_id))
        agent = await repos.agents.get(viewer.ws, call.agent_id) if call is not None else None
    if call is None:
        raise not_found()
    jobs = await call_jobs(platform, viewer.ws, call.id)
    links = await _execution_ids(platform, viewer, call)
    executions = [
        {**e, "execution_id": links.get((str(e.get("function")), str(e.get("tool_call_id"))))}
        for e in call.executions
    ]
    return page(
        request,
        "stored_call.html",
        nav="calls",
        call=call,
        agent=agent,
        duration_s=max(0, call.ended_us - call.started_us) / 1_000_000,
        executions=executions,
        fields=(call.extraction or {}).get("fields") or {},
        jobs=[(j, attempts(j)) for j in jobs],
        record=current_record(call, agent, jobs),
    )
