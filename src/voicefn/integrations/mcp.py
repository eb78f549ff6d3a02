"""MCP both ways (``pip install "voicefn[mcp]"``).

**Serve**: an agent's in-call functions as MCP tools, on the SDK's low-level server, with the
JSON Schemas as they are (parameters the call context fills left out). A voicefn error result is
a tool result with ``isError``; the filler goes out as a progress message when the client asked
for progress; a builtin's directive (transfer, end call, SMS) rides in the result's ``_meta``::

    server = build_server(agent, executor)                 # stdio: await serve_stdio(server)
    app = http_app(server)                                 # streamable HTTP, for uvicorn

For a service with many agents, :class:`McpEndpoint` resolves the agent (and authenticates) per
HTTP request.

**Consume**: an agent's ``functions`` may hold ``{mcp: {url | command, headers, allowed_tools}}``;
each tool becomes a function whose action is ``type: mcp`` (:func:`functions_from_server`), run by
the Executor like any other (filler, timeout, recording, egress policy on the server's URL).
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..context import SYSTEM_VARIABLES, CallContext
from ..dialects.llm import llm_parameters
from ..results import ToolResult
from ..spec import Function, HttpAction
from ._guard import extra

with extra("mcp"):
    import mcp_types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp.shared.exceptions import MCPError
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send

from .mcp_entry import ENTRY_KEYS, entry_functions, functions_from_server, parse_entry

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from ..executor import Executor
    from ..runtime.agent import Agent

__all__ = [
    "CONTEXT_META",
    "DIRECTIVE_META",
    "ENTRY_KEYS",
    "FILLER_META",
    "McpBinding",
    "McpEndpoint",
    "build_server",
    "entry_functions",
    "functions_from_server",
    "http_app",
    "parse_entry",
    "serve_stdio",
    "tool_result",
    "tools_for",
]

#: In a tool's ``_meta``: the line the agent says while the tool runs.
FILLER_META = "voicefn/filler"
#: In a result's ``_meta``: what the host must carry out (a builtin's transfer, SMS, end of call).
DIRECTIVE_META = "voicefn/directive"
#: In a ``tools/call`` request's ``_meta``: the call it belongs to (call_sid, from_number,
#: to_number, variables). The agent id and workspace are never taken from the client.
CONTEXT_META = "voicefn/context"
_CLIENT_CONTEXT = ("call_sid", "from_number", "to_number")
_SCOPE_KEY = "voicefn.mcp"

ContextFactory = Callable[[], CallContext]
ResultHook = Callable[[Function, ToolResult, CallContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class McpBinding:
    """What one MCP endpoint serves: an agent's in-call functions, run by ``executor`` in the
    context ``context()`` makes (the agent's variables and name are added to it)."""

    agent: Agent
    executor: Executor
    context: ContextFactory = CallContext
    #: Called after every tool call (recording); its failure never fails the call.
    on_result: ResultHook | None = None

    def functions(self) -> dict[str, Function]:
        return {f.name: f for f in self.agent.functions if f.phase == "in_call"}


def tools_for(functions: Sequence[Function], context: CallContext | None = None) -> list[Any]:
    """The MCP tools for ``functions``: name, description, the JSON Schema as it is minus
    context-filled parameters, the filler in ``_meta``; GETs are marked read-only."""
    tools = []
    for f in functions:
        meta = {FILLER_META: f.filler} if f.filler is not None else None
        read_only = isinstance(f.action, HttpAction) and f.action.method == "GET"
        tools.append(
            mcp_types.Tool(
                name=f.name,
                description=f.description or None,
                input_schema=llm_parameters(f, context),
                annotations=mcp_types.ToolAnnotations(read_only_hint=True) if read_only else None,
                _meta=meta,
            )
        )
    return tools


def tool_result(result: ToolResult) -> Any:
    """A voicefn result as an MCP ``CallToolResult``: the text the LLM would read, ``isError``
    for an error result, the JSON object as structured content when it is whole."""
    structured = (
        result.data
        if result.ok and isinstance(result.data, dict) and not result.truncated
        else None
    )
    meta = {DIRECTIVE_META: result.directive} if result.directive is not None else None
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=result.content)],
        structured_content=structured,
        is_error=not result.ok,
        _meta=meta,
    )


def _client_context(base: CallContext, meta: Mapping[str, Any] | None) -> CallContext:
    """The call context for one tool call: a fresh execution id, the call's own values from
    ``_meta`` (never the agent id or workspace)."""
    given = (meta or {}).get(CONTEXT_META)
    changes: dict[str, Any] = {"execution_id": str(uuid.uuid4())}
    if isinstance(given, dict):
        for key in _CLIENT_CONTEXT:
            if isinstance(given.get(key), str):
                changes[key] = given[key]
        variables = given.get("variables")
        if isinstance(variables, dict):
            extra_vars = {
                str(k): v
                for k, v in variables.items()
                if k not in SYSTEM_VARIABLES and isinstance(v, str | int | float | bool)
            }
            changes["variables"] = {**base.variables, **extra_vars}
    return dataclasses.replace(base, **changes)


BindingFor = Callable[["ServerRequestContext[Any, Any]"], McpBinding]


def _from_scope(fixed: McpBinding | None) -> BindingFor:
    def binding(ctx: ServerRequestContext[Any, Any]) -> McpBinding:
        request = ctx.request
        found = request.scope.get(_SCOPE_KEY) if isinstance(request, Request) else None
        if isinstance(found, McpBinding):
            return found
        if fixed is None:
            raise MCPError(mcp_types.INTERNAL_ERROR, "no agent is bound to this endpoint")
        return fixed

    return binding


def build_server(
    agent: Agent | None,
    executor: Executor | None = None,
    context: ContextFactory = CallContext,
    *,
    name: str | None = None,
    on_result: ResultHook | None = None,
) -> Any:
    """A low-level MCP ``Server`` for ``agent``'s in-call functions, run by ``executor``.

    ``agent=None`` builds the server :class:`McpEndpoint` uses, which finds the agent of each
    HTTP request in the request itself.
    """
    fixed = None
    if agent is not None:
        if executor is None:
            raise TypeError("build_server(agent, executor): an agent needs the executor to run it")
        fixed = McpBinding(agent, executor, context, on_result)
    binding_for = _from_scope(fixed)

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        b = binding_for(ctx)
        ctx_ = b.agent.call_context(b.context())
        return mcp_types.ListToolsResult(tools=tools_for(list(b.functions().values()), ctx_))

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        b = binding_for(ctx)
        functions = b.functions()
        function = functions.get(params.name)
        if function is None:
            raise MCPError(
                mcp_types.INVALID_PARAMS,
                f"Unknown tool {params.name!r}; tools: {', '.join(functions) or 'none'}",
            )
        call = _client_context(b.agent.call_context(b.context()), ctx.meta)
        filler = function.filler_for(b.agent.language)
        if filler:
            with contextlib.suppress(Exception):  # no progress token, or no channel for it
                await ctx.session.report_progress(0, None, filler)
        result = await b.executor.run(function, params.arguments or {}, call)
        if b.on_result is not None:
            with contextlib.suppress(Exception):
                await b.on_result(function, result, call)
        return tool_result(result)

    def input_schema(tool: str) -> dict[str, Any] | None:
        # What the 2026 HTTP transport checks Mcp-Param headers against, without running the
        # whole tools/list for every call (only a fixed agent: per-request ones have no lookup).
        assert fixed is not None
        function = fixed.functions().get(tool)
        if function is None:
            return None
        return llm_parameters(function, fixed.agent.call_context(fixed.context()))

    label = name or (agent.name if agent is not None else "voicefn")
    return Server(
        label,
        version=_version(),
        instructions="Tools of a voice agent: each runs one of the agent's functions.",
        get_tool_input_schema=input_schema if fixed is not None else None,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def _version() -> str:
    from .. import __version__

    return str(__version__)


async def serve_stdio(server: Any) -> None:
    """Serve ``server`` on this process's stdin/stdout until the client closes them."""
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


def http_app(
    server: Any,
    *,
    path: str = "/mcp",
    host: str = "127.0.0.1",
    stateless: bool = False,
    json_response: bool = False,
) -> Starlette:
    """A Starlette app serving ``server`` over streamable HTTP at ``path`` (its lifespan runs the
    session manager). On a loopback ``host`` only loopback Host/Origin headers are accepted
    (DNS-rebinding protection)."""
    app: Starlette = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        stateless_http=stateless,
        json_response=json_response,
    )
    return app


Resolver = Callable[[Request], Awaitable[McpBinding | Response]]


class McpEndpoint:
    """One ASGI endpoint serving the MCP tools of whichever agent each request names.

    ``resolve(request)`` authenticates the request (headers and path only: the body belongs to
    MCP) and returns the :class:`McpBinding` to serve, or a ``Response`` to send instead (401,
    404). Nothing is shared between requests but the executor the binding names, so the
    default is stateless JSON: any process of a service can answer any request.

        endpoint = McpEndpoint(resolve)
        async with endpoint.run():        # in the application's lifespan
            ...
    """

    def __init__(
        self,
        resolve: Resolver,
        *,
        stateless: bool = True,
        json_response: bool = True,
        security: TransportSecuritySettings | None = None,
    ) -> None:
        self.resolve = resolve
        self.server = build_server(None)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=stateless,
            json_response=json_response,
            security_settings=security,
        )

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        outcome = await self.resolve(Request(scope, receive))
        if isinstance(outcome, Response):
            await outcome(scope, receive, send)
            return
        scope[_SCOPE_KEY] = outcome
        await self.manager.handle_request(scope, receive, send)

    def route(self, path: str) -> Route:
        """A Starlette/FastAPI route for this endpoint at ``path`` (path parameters allowed)."""
        return Route(path, endpoint=self, methods=["GET", "POST", "DELETE"])
