"""The executions log (filters, newest first, a page at a time) and one execution's detail."""

from __future__ import annotations

import datetime as dt
import re

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...store import ExecutionFilter
from . import data
from .auth import PlatformDep, ViewerDep
from .render import ID, checked_id, not_found, page

router = APIRouter(include_in_schema=False)

PAGE = 50
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
STATUS = re.compile(r"^[a-z_]{1,40}$")
SOURCES = ("execute", "test", "call")
#: The outcomes offered in the filter (any error code can be typed in the URL).
OUTCOMES = ("ok", "error", "request_failed", "function_failed", "invalid_arguments")


def moment(value: str) -> int | None:
    """A ``datetime-local`` value (UTC) as microseconds; None when empty or unreadable."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000)


@router.get("/executions")
async def executions_page(request: Request, viewer: ViewerDep, platform: PlatformDep) -> Response:
    q = request.query_params
    chosen = {
        k: q.get(k, "").strip() for k in ("agent", "function", "status", "source", "since", "until")
    }
    notes: list[str] = []

    def keep(name: str, pattern: re.Pattern[str]) -> str | None:
        value = chosen[name]
        if value and not pattern.match(value):
            notes.append(f"ignored the {name} filter {value!r}: not a valid value")
            chosen[name] = ""
            return None
        return value or None

    agent_id = keep("agent", ID)
    function = keep("function", NAME)
    status = keep("status", STATUS)
    source = chosen["source"] if chosen["source"] in SOURCES else None
    since = moment(chosen["since"]) if chosen["since"] else None
    until = moment(chosen["until"]) if chosen["until"] else None
    await platform.recorder.flush()  # this process's latest runs are listed too
    flt = ExecutionFilter(agent_id, None, function, status, source, since, until)
    found, cursor = await data.paged(
        platform,
        lambda repos, at: repos.executions.page(viewer.ws, flt, limit=PAGE, cursor=at),
        q.get("cursor") or None,
        notes,
    )
    agents = await data.agents(platform, viewer.ws)
    filters = {k: v for k, v in chosen.items() if v}
    next_query = {**filters, "cursor": found.next_cursor} if found.next_cursor else None
    return page(
        request,
        "executions.html",
        nav="executions",
        rows=found.items,
        agents=agents,
        names={a.id: a.name for a in agents},
        chosen=chosen,
        sources=SOURCES,
        outcomes=OUTCOMES,
        notes=notes,
        filters=filters,
        next_query=next_query,
        first_page=cursor is None,
    )


@router.get("/executions/{execution_id}")
async def execution_page(
    request: Request, execution_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    await platform.recorder.flush()
    async with platform.store.read() as repos:
        record = await repos.executions.get(viewer.ws, checked_id(execution_id))
        agent = await repos.agents.get(viewer.ws, record.agent_id) if record else None
    if record is None:
        raise not_found()
    return page(request, "execution.html", nav="executions", ex=record, agent=agent)
