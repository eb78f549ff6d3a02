"""The Executor: runs functions with one pooled HTTP client per process.

async with voicefn.Executor() as ex:
    result = await ex.run(function, '{"order_id": "ORD-1"}', voicefn.CallContext(call_sid="CA1"))
    print(result.content)          # what the LLM reads
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .actions.base import Action, Invocation
from .actions.builtins import BuiltinRunner
from .actions.code import CodeRunner, SandboxMode
from .actions.http import HttpRunner, orjson_exact
from .actions.mcp import McpRunner
from .actions.webhooks import WebhookSender
from .arguments import ArgumentError, bind
from .context import CallContext
from .egress import EgressPolicy
from .outbound import TenantTransports, make_engine_transport
from .results import DEFAULT_RESULT_MAX_BYTES, Timings, ToolResult, error_content
from .spec import BuiltinAction, Function, HttpAction, McpAction

log = logging.getLogger("voicefn.executor")


class Executor:
    """Runs functions. Create one per process and share it: it owns the connection pool.

    By default no request reaches loopback, private, link-local, metadata or other non-public
    addresses; pass ``egress=EgressPolicy(...)`` (an allow-list) or ``allow_private_network=True``
    (local development) to open what you choose.
    """

    def __init__(
        self,
        *,
        egress: EgressPolicy | None = None,
        allow_private_network: bool = False,
        allow: Iterable[str] = (),
        https_only: bool = False,
        max_response_bytes: int = 1024 * 1024,
        result_max_bytes: int = DEFAULT_RESULT_MAX_BYTES,
        max_redirects: int = 5,
        max_connections: int = 200,
        webhook_timeout_ms: int = 10_000,
        transfer_webhook_wait_ms: int = 1500,
        sandbox_mode: SandboxMode = "isolated",
        allow_mcp_commands: bool | None = None,
    ) -> None:
        self.egress = egress or EgressPolicy.from_strings(
            allow, allow_private_network=allow_private_network, https_only=https_only
        )
        # HTTP functions' requests are built entirely by the engine from configuration, so they
        # share one pool. Sandboxed code writes its own requests: those get a pool per tenant.
        self.transport = make_engine_transport(self.egress, max_connections=max_connections)
        self.http = HttpRunner(
            self.transport,
            max_response_bytes=max_response_bytes,
            result_max_bytes=result_max_bytes,
            max_redirects=max_redirects,
        )
        self.builtins = BuiltinRunner()
        self.code = CodeRunner(
            TenantTransports(self.egress),
            mode=sandbox_mode,
            result_max_bytes=result_max_bytes,
            max_response_bytes=max_response_bytes,
            max_redirects=max_redirects,
        )
        # An MCP server started from a command runs on this host: only where the operator says
        # so (None: the VOICEFN_ALLOW_MCP_COMMANDS environment variable decides).
        if allow_mcp_commands is None:
            allow_mcp_commands = os.environ.get("VOICEFN_ALLOW_MCP_COMMANDS", "") in ("1", "true")
        self.mcp = McpRunner(
            self.egress, allow_commands=allow_mcp_commands, result_max_bytes=result_max_bytes
        )
        self.transfer_webhook_wait_s = transfer_webhook_wait_ms / 1000
        self.webhooks = WebhookSender(self.transport, webhook_timeout_ms / 1000, max_redirects)

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self, webhook_grace_s: float = 2.0) -> None:
        await self.webhooks.drain(webhook_grace_s)
        await self.code.aclose()
        await self.mcp.aclose()
        await self.transport.aclose()

    async def run(
        self,
        function: Function,
        arguments: str | Mapping[str, Any] | None = None,
        context: CallContext | None = None,
        *,
        tool_call_id: str | None = None,
    ) -> ToolResult:
        """Run ``function`` once with the LLM's raw ``arguments`` (a JSON string or a mapping).

        Never raises for a problem of the call itself: missing arguments, a refused address, a
        timeout or a 503 all come back as a ToolResult with ``ok=False``.
        """
        started = time.perf_counter()
        ctx = context or CallContext()
        result = ToolResult(function.name, False, "", timings=Timings(started_at=time.time()))
        try:
            # One coroutine for the engine's part (no _run layer): every await of the request
            # passes through each frame of the chain, so each one costs on every request.
            if isinstance(arguments, str) and arguments:
                # An object orjson reads exactly as json would goes to bind already parsed
                # (bind's json.loads is a third of its cost); anything else, bind reads itself.
                parsed = orjson_exact(arguments)
                if type(parsed) is dict:
                    arguments = parsed
            try:
                bound = bind(function, arguments, ctx)
            except ArgumentError as exc:
                result.error = exc.code
                result.data = exc.payload()
                result.content = error_content(result.data)
                result.timings.bind_ms = (time.perf_counter() - started) * 1000
            else:
                result.arguments = bound.values
                result.from_context = bound.from_context
                result.ignored_arguments = bound.ignored
                result.timings.bind_ms = (time.perf_counter() - started) * 1000
                variables = ctx.as_variables()
                values = {**variables, **bound.values} if variables else bound.values
                inv = Invocation(function, values, variables, ctx, tool_call_id, started, result)
                action = function.action
                if action.pre_call_webhook_param is not None:
                    hook = self.webhooks.fire(inv)
                    if hook is not None and isinstance(action, BuiltinAction):
                        # A transfer's webhook exists to tell the customer's system *before*
                        # the call moves (seed 002): wait for it briefly, never fail the
                        # transfer for it.
                        await asyncio.wait({hook}, timeout=self.transfer_webhook_wait_s)
                runner: Action
                if isinstance(action, HttpAction):
                    runner = self.http
                elif isinstance(action, BuiltinAction):
                    runner = self.builtins
                elif isinstance(action, McpAction):
                    runner = self.mcp
                else:
                    runner = self.code
                await runner.run(inv)
        except Exception:
            # A bug of ours must not end the call: the LLM gets an error it can act on.
            log.exception("%s: the function failed with an internal error", function.name)
            result.ok = False
            result.error = "function_failed"
            result.data = {
                "error": "function_failed",
                "reason": "internal",
                "detail": "The function could not run because of an internal error.",
            }
            result.content = error_content(result.data)
        result.timings.total_ms = (time.perf_counter() - started) * 1000
        return result
