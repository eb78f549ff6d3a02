"""What the pages read, through the same store calls and API helpers as the REST routes; an
id this workspace does not have is the one 404 page."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ...store import AgentRecord, BadCursor, FunctionRecord, Page, Repos, Workspace
from ..errors import ApiError
from ..platform import Platform
from .render import checked_id, not_found


async def agent(platform: Platform, ws: Workspace, agent_id: str) -> AgentRecord:
    async with platform.store.read() as repos:
        record = await repos.agents.get(ws, checked_id(agent_id))
    if record is None:
        raise not_found()
    return record


async def function(
    platform: Platform, ws: Workspace, agent_id: str, function_id: str
) -> FunctionRecord:
    async with platform.store.read() as repos:
        record = await repos.functions.get(ws, checked_id(agent_id), checked_id(function_id))
    if record is None:
        raise not_found()
    return record


async def agents(platform: Platform, ws: Workspace) -> list[AgentRecord]:
    """Every agent of the workspace, oldest first (the store pages them; a page holds 200)."""
    out: list[AgentRecord] = []
    cursor: str | None = None
    async with platform.store.read() as repos:
        while True:
            page = await repos.agents.page(ws, limit=200, cursor=cursor)
            out += page.items
            cursor = page.next_cursor
            if cursor is None or len(out) >= 2000:
                return out


T = TypeVar("T")
CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,300}$")


async def paged(
    platform: Platform,
    fetch: Callable[[Repos, str | None], Awaitable[Page[T]]],
    cursor: str | None,
    notes: list[str],
) -> tuple[Page[T], str | None]:
    """One page of a list (newest first) from a page link's ``cursor``, and the cursor used: an
    unreadable or out-of-date one shows the newest page, saying so in ``notes``."""
    if cursor is not None and not CURSOR.match(cursor):
        cursor = None
    try:
        async with platform.store.read() as repos:
            return await fetch(repos, cursor), cursor
    except BadCursor:
        notes.append("that page link is out of date: showing the newest page")
        async with platform.store.read() as repos:
            return await fetch(repos, None), None


def problems_of(exc: ApiError) -> list[dict[str, Any]]:
    """An API error as the problem list a page shows (a 404 becomes the 404 page)."""
    if exc.status == 404:
        raise not_found() from None
    if exc.problems:
        return [p.to_dict() for p in exc.problems]
    return [{"severity": "error", "path": "$", "message": exc.message, "found": None, "fix": ""}]
