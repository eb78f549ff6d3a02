"""The MCP action: call one tool on an MCP server (an agent's ``{mcp: ...}`` entry makes them).

The Executor keeps one live session per server, headers and tenant (a session that carried one
workspace's calls never carries another's), opened on first use and closed with the Executor.
The server's URL goes through the egress policy on every connection; a server started from a
``command`` runs on this host, so it is refused unless the operator allowed commands.

What the LLM reads: the structured content as JSON when the server gives one, else the text
blocks (images, audio and resources are described, not inlined), bounded and scrubbed of the
headers' secrets. A tool's own error (``isError``) is ``{"error": "request_failed", "reason":
"tool_error", "detail": ...}``; a protocol error from the server is ``reason: "mcp_error"``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..egress import EgressDenied, EgressPolicy
from ..redaction import Redactor, function_secrets
from ..results import RequestRecord, ToolResult, bounded, error_content
from ..spec import McpAction
from ..templates import VARIABLE_RE, TemplateError, render_text
from .base import Invocation

if TYPE_CHECKING:
    from ..integrations.mcp_client import Connection, ServerAddress

log = logging.getLogger("voicefn.mcp")

#: The record's method: what was sent is a JSON-RPC ``tools/call``.
METHOD = "tools/call"


def _blob_size(data: str) -> int:
    try:
        return len(base64.b64decode(data, validate=False))
    except (binascii.Error, ValueError):
        return len(data)


def describe_content(result: Any) -> tuple[Any, str]:
    """``(data, text)`` of an MCP ``CallToolResult``: what to keep and what the LLM reads."""
    if result.structured_content is not None:
        data = result.structured_content
        return data, json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    parts: list[str] = []
    for block in result.content:
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {block.mime_type}, {_blob_size(block.data)} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}: {block.name}]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            parts.append(text if isinstance(text, str) else f"[resource {res.uri}]")
        else:
            parts.append(f"[{kind} content]")
    text = "\n".join(parts)
    if len(parts) == 1 and text[:1] in "{[":
        try:
            return json.loads(text), text
        except json.JSONDecodeError:
            pass
    return text, text


class McpRunner:
    """``async run(invocation) -> ToolResult`` for functions whose action is ``mcp``."""

    def __init__(
        self,
        egress: EgressPolicy,
        *,
        allow_commands: bool = False,
        result_max_bytes: int = 16 * 1024,
        max_connections: int = 64,
    ) -> None:
        self.egress = egress
        self.allow_commands = allow_commands
        self.result_max_bytes = result_max_bytes
        self.max_connections = max_connections
        self._connections: OrderedDict[tuple[str, ServerAddress], Connection] = OrderedDict()
        self._busy: dict[Connection, int] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._connections)

    def _address(self, action: McpAction, variables: dict[str, Any]) -> ServerAddress:
        from ..integrations.mcp_client import ServerAddress

        headers = {}
        for name, value in action.headers.items():
            unset = [
                m.group(0) for m in VARIABLE_RE.finditer(value) if m.group("name") not in variables
            ]
            if unset:
                raise TemplateError(
                    f"context variable {unset[0]} in the headers is not set for this call"
                )
            rendered = render_text(value, variables)
            if any(c in rendered for c in "\r\n\0"):  # a variable must not split a request
                raise TemplateError(f"the header {name!r} would contain a line break or NUL")
            headers[name] = rendered
        return ServerAddress(
            url=action.url,
            headers=tuple(sorted(headers.items())),
            command=action.command,
            args=tuple(action.args),
            env=tuple(sorted(action.env.items())),
            cwd=action.cwd,
        )

    async def _connection(self, tenant: str, server: ServerAddress) -> Connection:
        from ..integrations.mcp_client import Connection

        key = (tenant, server)
        conn = self._connections.get(key)
        if conn is not None and conn.alive:
            self._connections.move_to_end(key)
            return conn
        if conn is not None:  # it died (server gone, process exited): start again
            self._connections.pop(key, None)
            await conn.aclose()
        conn = Connection(server, self.egress, self.allow_commands)
        self._connections[key] = conn
        while len(self._connections) > self.max_connections:
            idle = next((k for k, c in self._connections.items() if not self._busy.get(c)), None)
            if idle is None:
                break
            self._close_later(self._connections.pop(idle))
        return conn

    def _close_later(self, conn: Connection) -> None:
        task = asyncio.get_running_loop().create_task(conn.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _drop(self, tenant: str, server: ServerAddress, conn: Connection) -> None:
        """Forget a connection a call failed on (a server restarted, a session it no longer
        knows): the next call opens a new one."""
        if self._connections.get((tenant, server)) is conn:
            del self._connections[(tenant, server)]
            self._close_later(conn)

    async def run(self, inv: Invocation) -> ToolResult:
        action = inv.function.action
        assert isinstance(action, McpAction)
        result = inv.result
        t0 = time.perf_counter()
        arguments = {k: v for k, v in inv.values.items() if k in inv.function.properties}
        try:
            server = self._address(action, inv.variables)
        except TemplateError as exc:
            return self._fail(inv, "template", f"The request could not be built: {exc}", None)
        except ImportError as exc:  # the extra is missing: nothing is sent
            return self._fail(inv, "unavailable", str(exc), None)
        redact = Redactor(function_secrets(None, dict(server.headers)))
        result.request = RequestRecord(
            method=METHOD,
            url=redact.text(server.label),
            headers=redact.headers(dict(server.headers)),
            body={"name": action.tool, "arguments": arguments},
        )
        t1 = time.perf_counter()
        result.timings.render_ms = (t1 - t0) * 1000
        result.timings.time_to_request_ms = (t1 - inv.started) * 1000
        ctx = inv.context
        tenant = f"{ctx.workspace_id or ''}/{ctx.agent_id or ''}"
        meta = {"voicefn/call_id": ctx.call_id}
        if ctx.agent_id:
            meta["voicefn/agent_id"] = ctx.agent_id
        conn: Connection | None = None
        try:
            async with asyncio.timeout(action.timeout_ms / 1000):
                conn = await self._connection(tenant, server)
                self._busy[conn] = self._busy.get(conn, 0) + 1
                reply = await conn.call(action.tool, arguments, meta)
        except TimeoutError:
            return self._fail(
                inv, "timeout", f"No answer from the MCP tool within {action.timeout_ms} ms", t1
            )
        except Exception as exc:
            reason, detail = _describe(exc, server.label)
            if conn is not None and reason in ("connection", "mcp_error"):
                self._drop(tenant, server, conn)
            return self._fail(inv, reason, redact.text(detail), t1)
        finally:
            if conn is not None:
                left = self._busy.get(conn, 1) - 1
                if left:
                    self._busy[conn] = left
                else:
                    self._busy.pop(conn, None)
        result.timings.request_ms = (time.perf_counter() - t1) * 1000
        data, text = describe_content(reply)
        if redact:
            text = redact.text(text)
            data = json.loads(redact.text(json.dumps(data))) if not isinstance(data, str) else text
        if reply.is_error:  # a JSON error (another voicefn, say) is kept whole as the body
            body = None if isinstance(data, str) else data
            detail = "The MCP tool reported an error" if body is not None else text
            return self._fail(
                inv, "tool_error", detail or "The MCP tool reported an error", None, body
            )
        result.ok = True
        result.data = data
        content = text if text else error_content({"ok": True})
        result.content, result.truncated = bounded(content, self.result_max_bytes)
        return result

    def _fail(
        self,
        inv: Invocation,
        reason: str,
        detail: str,
        sent_at: float | None,
        body: Any = None,
    ) -> ToolResult:
        result = inv.result
        if sent_at is not None:
            result.timings.request_ms = (time.perf_counter() - sent_at) * 1000
        payload: dict[str, Any] = {
            "error": "request_failed",
            "reason": reason,
            "detail": bounded(detail, 2048)[0],
        }
        if body is not None:
            payload["body"] = body
        result.ok = False
        result.error = "request_failed"
        result.data = payload
        result.content, result.truncated = bounded(error_content(payload), self.result_max_bytes)
        log.info("%s failed: %s: %s", inv.function.name, reason, detail)
        return result

    async def aclose(self) -> None:
        connections, self._connections = list(self._connections.values()), OrderedDict()
        for conn in connections:
            with contextlib.suppress(Exception):
                await conn.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


def _describe(exc: BaseException, label: str) -> tuple[str, str]:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, EgressDenied):
        return "blocked", f"Request refused by the egress policy: {exc.reason}"
    from ..integrations.mcp_client import CommandNotAllowed

    if isinstance(exc, CommandNotAllowed):
        return "blocked", str(exc)
    from mcp.shared.exceptions import MCPError

    if isinstance(exc, MCPError):
        return "mcp_error", f"The MCP server {label} refused the call: {exc.message}"
    if isinstance(exc, TimeoutError):
        return "timeout", f"The MCP server {label} did not answer in time"
    text = str(exc).strip() or type(exc).__name__
    return "connection", f"Could not reach the MCP server {label}: {text}"
