"""Helpers for the MCP tests: an in-memory client session, uvicorn servers on free loopback ports
(in a thread with its own event loop, so synchronous agent loading can reach them), and an
"upstream" MCP server whose tools exercise what a consumer must handle."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp import ClientSession
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.memory import create_client_server_memory_streams
from starlette.requests import Request

from voicefn.cli._mcp import listen


@contextlib.asynccontextmanager
async def memory_session(server: Server[Any], **kwargs: Any) -> AsyncIterator[ClientSession]:
    """The SDK's ClientSession talking to ``server`` over the SDK's in-memory streams."""
    async with (
        create_client_server_memory_streams() as (client_streams, server_streams),
        anyio.create_task_group() as tg,
    ):
        options = server.create_initialization_options()
        tg.start_soon(server.run, *server_streams, options)
        async with ClientSession(*client_streams, **kwargs) as session:
            await session.initialize()
            yield session
        tg.cancel_scope.cancel()


@dataclass
class Running:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop | None = None


@contextlib.contextmanager
def serve_in_thread(make_app: Callable[[], Any], path: str = "/mcp") -> Iterator[Running]:
    """Run the ASGI app ``make_app()`` builds (in the server's own loop) on a free port."""
    sock = listen("127.0.0.1", 0)  # IPPROTO_TCP: asyncio then sets TCP_NODELAY
    port = sock.getsockname()[1]
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            app = make_app()
            if asyncio.iscoroutine(app):
                app = await app
            holder["loop"] = asyncio.get_running_loop()
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
            holder["server"] = server
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no event
                await asyncio.sleep(0.005)
            ready.set()
            await task

        try:
            asyncio.run(main())
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    if "server" not in holder or not holder["server"].started:
        raise RuntimeError("the test server did not start")
    running = Running(f"http://127.0.0.1:{port}{path}", holder["server"], thread, holder["loop"])
    try:
        yield running
    finally:
        running.server.should_exit = True
        thread.join(30)
        sock.close()


@dataclass
class Upstream:
    """What the upstream MCP server saw."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    initializations: int = 0
    never: asyncio.Event | None = None


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 24).decode()

ORDER_SCHEMA = {
    "type": "object",
    "$defs": {
        "Channel": {"type": "string", "enum": ["phone", "web"], "description": "Where it came from"}
    },
    "properties": {
        "order_id": {"type": "string", "description": "The order ID, e.g. ORD-1"},
        "channel": {"$ref": "#/$defs/Channel"},
        "call_sid": {"type": "string", "description": "The call"},
    },
    "required": ["order_id"],
}


def upstream_server(state: Upstream) -> Server[Any]:
    """An MCP server as third parties write them: dotted names, ``$ref`` schemas, structured
    content, images, tool errors, a tool without a description, one that never answers."""

    tools = [
        types.Tool(
            name="orders.lookup",
            description="Look up an order by its ID.",
            input_schema=ORDER_SCHEMA,
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name="refund",
            description="Refund an order.",
            input_schema={"type": "object", "properties": {"order_id": {"type": "string"}}},
        ),
        types.Tool(
            name="picture", description="A photo of the parcel.", input_schema={"type": "object"}
        ),
        types.Tool(
            name="whoami",
            description="Echo the Authorization header.",
            input_schema={"type": "object"},
        ),
        types.Tool(name="hang", description="Never answers.", input_schema={"type": "object"}),
        types.Tool(name="nodesc", input_schema={"type": "object"}),
    ]

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tools)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        headers = dict(ctx.request.headers) if isinstance(ctx.request, Request) else {}
        state.calls.append(
            {
                "name": params.name,
                "arguments": params.arguments,
                "meta": ctx.meta,
                "headers": headers,
            }
        )
        args = params.arguments or {}
        if params.name == "orders.lookup":
            data = {
                "order_id": args.get("order_id"),
                "status": "shipped",
                "channel": args.get("channel"),
            }
            return types.CallToolResult(
                content=[types.TextContent(text="shipped")], structured_content=data
            )
        if params.name == "refund":
            return types.CallToolResult(
                content=[types.TextContent(text="Refunds need a supervisor.")], is_error=True
            )
        if params.name == "picture":
            return types.CallToolResult(
                content=[
                    types.TextContent(text="Here it is."),
                    types.ImageContent(data=PNG, mime_type="image/png"),
                ]
            )
        if params.name == "whoami":
            return types.CallToolResult(
                content=[types.TextContent(text=f"you sent {headers.get('authorization')}")]
            )
        if params.name == "hang":
            state.never = asyncio.Event()
            await state.never.wait()
        if params.name not in {t.name for t in tools}:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: {params.name}")
        return types.CallToolResult(content=[types.TextContent(text="ok")])

    async def initialized(ctx: Any, params: Any) -> None:
        state.initializations += 1

    server: Server[Any] = Server("upstream", on_list_tools=list_tools, on_call_tool=call_tool)
    server.add_notification_handler(
        "notifications/initialized", types.NotificationParams, initialized
    )
    return server
