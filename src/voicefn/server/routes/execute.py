"""The hot path: a voice stack runs a function of an agent by name.

It costs two cache lookups (agent, function: the database is read once per version), the
shared Executor's run, and a recording handed to the recorder; nothing on it waits for the
database once warm. :func:`run_execute` is the whole of it; this route and the ASGI fast path
(:mod:`voicefn.server.fastpath`, which skips FastAPI's routing for well-formed requests) both
call it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ...results import error_content
from ...store import Workspace
from ..deps import PlatformDep, WorkspaceDep
from ..errors import not_found
from ..platform import Platform
from ..responses import Json
from ..schemas import ERRORS, AgentId, ExecuteIn, ExecuteOut, FunctionName, result_fields

router = APIRouter(tags=["execute"], responses=ERRORS)
ROUTE = "/v1/agents/{agent_id}/functions/{name}/execute"


@router.post(
    ROUTE,
    summary="Run a function by name (for voice stacks): the ToolResult",
    response_model=ExecuteOut,
    response_class=Json,
)
async def execute(
    agent_id: AgentId,
    name: FunctionName,
    body: ExecuteIn,
    ws: WorkspaceDep,
    platform: PlatformDep,
    request: Request,
) -> Json:
    """``content`` is exactly what the LLM reads, ``filler`` what to say while it runs (in the
    call's language), ``directive`` what the host must do for a builtin (end, transfer, SMS).
    A failed call (timeout, 503, refused address, missing arguments) is ``ok: false`` with a
    ``content`` the LLM can act on: still HTTP 200."""
    rid = request.scope.get("voicefn.request_id")
    status, out = await run_execute(platform, ws, agent_id, name, body, rid)
    return Json(out, status)


async def run_execute(
    platform: Platform,
    ws: Workspace,
    agent_id: str,
    name: str,
    body: ExecuteIn,
    request_id: str | None,
) -> tuple[int, dict[str, Any]]:
    """The execute route's answer: (HTTP status, JSON body)."""
    agent = await platform.catalog.agent(ws, agent_id)
    if agent is None:
        return 404, not_found(f"agent {agent_id}").body(request_id)
    fn = await platform.catalog.function(ws, agent, name)
    if fn is None:
        return 404, await _unknown(platform, ws, agent_id, name, request_id)
    call = body.context
    ctx = platform.call_context(
        ws,
        agent,
        call_sid=call.call_sid,
        from_number=call.from_number,
        to_number=call.to_number,
        execution_id=call.execution_id,
        variables=call.variables,
    )
    execution_id, result = await platform.run(
        ws,
        agent,
        fn,
        arguments=body.arguments,
        context=ctx,
        tool_call_id=body.tool_call_id,
        source="execute",
    )
    out = result_fields(result)
    out["execution_id"] = execution_id
    out["function_id"] = fn.id
    out["version"] = fn.version
    out["filler"] = fn.function.filler_for(call.language or agent.language)
    return 200, out


async def _unknown(
    platform: Platform, ws: Workspace, agent_id: str, name: str, request_id: str | None
) -> dict[str, Any]:
    async with platform.store.read() as repos:
        records = await repos.functions.all(ws, agent_id)
    names = [f.name for f in records if f.document.get("phase", "in_call") == "in_call"]
    listed = ", ".join(names) or "none"
    payload = {
        "error": "unknown_function",
        "detail": f"There is no function named {name!r}. Available: {listed}.",
    }
    body: dict[str, Any] = {
        "error": "unknown_function",
        "message": f"agent {agent_id} has no function named {name!r}",
        "content": error_content(payload),
        "functions": names,
    }
    if request_id:
        body["request_id"] = request_id
    return body
