"""Executions: every run (execute, test, call), newest first, filtered, with a cursor."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from ...store import BadCursor, ExecutionFilter, ExecutionRecord
from ...validation import Problem
from ..deps import PlatformDep, WorkspaceDep
from ..errors import invalid, not_found
from ..schemas import (
    ERRORS,
    NAME_PATTERN,
    Cursor,
    ExecutionDetail,
    ExecutionId,
    ExecutionList,
    ExecutionOut,
    IdFilter,
    at,
)

router = APIRouter(prefix="/v1/executions", tags=["executions"], responses=ERRORS)


def _us(value: dt.datetime | None) -> int | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1_000_000)


def execution_out(r: ExecutionRecord) -> ExecutionOut:
    return ExecutionOut(
        id=r.id,
        agent_id=r.agent_id,
        function_id=r.function_id,
        function=r.function_name,
        version=r.function_version,
        source=r.source,
        ok=r.ok,
        status=r.status,
        error=r.error,
        started_at=at(r.started_us),
        total_ms=r.total_ms,
        call_sid=r.call_sid,
        tool_call_id=r.tool_call_id,
    )


@router.get("", summary="Executions, newest first")
async def list_executions(
    ws: WorkspaceDep,
    platform: PlatformDep,
    agent_id: IdFilter = None,
    function_id: IdFilter = None,
    function: Annotated[str | None, Query(pattern=NAME_PATTERN, description="by name")] = None,
    status: Annotated[
        str | None,
        Query(pattern=r"^[a-z_]{1,40}$", description="ok, error, or an error code"),
    ] = None,
    source: Literal["execute", "test", "call"] | None = None,
    since: Annotated[dt.datetime | None, Query(description="started at or after")] = None,
    until: Annotated[dt.datetime | None, Query(description="started before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor = None,
) -> ExecutionList:
    await platform.recorder.flush()  # this process's latest runs are listed too
    flt = ExecutionFilter(agent_id, function_id, function, status, source, _us(since), _us(until))
    try:
        async with platform.store.read() as repos:
            page = await repos.executions.page(ws, flt, limit=limit, cursor=cursor)
    except BadCursor as exc:
        raise invalid([Problem("query:cursor", str(exc), "pass next_cursor as given")]) from None
    return ExecutionList(data=[execution_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{execution_id}", summary="One execution: arguments, request, result, timings")
async def get_execution(
    execution_id: ExecutionId, ws: WorkspaceDep, platform: PlatformDep
) -> ExecutionDetail:
    await platform.recorder.flush()
    async with platform.store.read() as repos:
        r = await repos.executions.get(ws, execution_id)
    if r is None:
        raise not_found(f"execution {execution_id}")
    return ExecutionDetail(
        **execution_out(r).model_dump(),
        arguments=r.arguments,
        request=r.request,
        result=r.result,
        timings=r.timings,
    )
