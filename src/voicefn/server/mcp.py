"""``/v1/agents/{agent_id}/mcp``: an agent's in-call functions as MCP tools (streamable HTTP).

The same server ``voicefn mcp serve`` runs (:mod:`voicefn.integrations.mcp`), authenticated with
the workspace's API key exactly as the REST API is: another workspace's agent answers like one
that does not exist. Every tool call runs through the workspace's Executor (its egress policy),
in a context with the workspace as the tenant, and is recorded like an execute (source
``"mcp"``). Stateless JSON responses: any ``voicefn serve`` process can answer any request.

Mounted only when the ``mcp`` package is installed (the ``voicefn[mcp]`` extra).
"""

from __future__ import annotations

import importlib.util
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..context import CallContext
from ..results import ToolResult
from ..spec import Function
from .deps import authenticate
from .errors import ApiError, not_found

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..integrations.mcp import McpBinding
    from .catalog import RunnableFunction
    from .platform import Platform

ROUTE = "/v1/agents/{agent_id}/mcp"


def available() -> bool:
    return importlib.util.find_spec("mcp") is not None


def _error(error: ApiError, request: Request) -> Response:
    body = error.body(request.scope.get("voicefn.request_id"))
    return JSONResponse(body, error.status, headers=error.headers)


async def resolve(request: Request) -> McpBinding | Response:
    """The binding for the agent the request names, or the 401/404 to send instead. Reads the
    headers and the path only: the body belongs to MCP."""
    from ..integrations.mcp import McpBinding
    from ..runtime.agent import Agent

    platform: Platform = request.app.state.platform
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return _error(
            ApiError(
                401,
                "unauthorized",
                "send an API key: Authorization: Bearer vfn_...",
                headers={"WWW-Authenticate": "Bearer"},
            ),
            request,
        )
    principal = await authenticate(request, secret.strip())
    if principal is None:
        return _error(
            ApiError(
                401,
                "unauthorized",
                "this API key is unknown or revoked",
                headers={"WWW-Authenticate": "Bearer"},
            ),
            request,
        )
    ws = principal.workspace
    agent_id = str(request.path_params["agent_id"])
    agent = await platform.catalog.agent(ws, agent_id)
    if agent is None:
        return _error(not_found(f"agent {agent_id}"), request)
    async with platform.store.read() as repos:
        records = await repos.functions.all(ws, agent_id)
    runnables: dict[str, RunnableFunction] = {}
    for record in records:
        if record.document.get("phase", "in_call") != "in_call":
            continue
        runnable = await platform.catalog.function(ws, agent, record.name)
        if runnable is not None:
            runnables[runnable.function.name] = runnable
    engine_agent = Agent(
        name=agent.name,
        language=agent.language,
        variables=agent.variables,
        webhook_url=agent.webhook_url,
        functions=[r.function for r in runnables.values()],
    )
    executor = platform.executors.get(await platform.catalog.policy(ws))

    def context() -> CallContext:
        return platform.call_context(ws, agent)

    async def on_result(function: Function, result: ToolResult, ctx: CallContext) -> None:
        runnable = runnables.get(function.name)
        if runnable is None:
            return
        if runnable.redactor:
            result.content = runnable.redactor.text(result.content)
        _, journaled = platform.record(ws, runnable, result, ctx, None, "mcp")
        await journaled

    return McpBinding(engine_agent, executor, context, on_result)


def mount(app: FastAPI, stack: list[Any]) -> None:
    """Add the route; ``stack`` collects the endpoint's lifespan (entered by the app's)."""
    if not available():
        return
    from ..integrations.mcp import McpEndpoint

    endpoint = McpEndpoint(resolve)
    app.router.routes.append(endpoint.route(ROUTE))
    stack.append(endpoint.run)


async def enter(stack: list[Any], exits: AsyncExitStack) -> None:
    for run in stack:
        await exits.enter_async_context(run())
