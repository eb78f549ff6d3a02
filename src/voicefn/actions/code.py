"""Customer code (advanced mode): Python and JavaScript functions, run in the sandbox.

The code never runs in this process. Each language has a sandbox (``voicefn.sandbox.python``,
``voicefn.sandbox.javascript``) that is started on first use. The code's HTTP requests come back
here through the ``egress`` callback and go out on the Executor's client, so the same egress
policy applies to them as to HTTP functions: checked on the address actually connected to.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import time
from typing import Any, Literal

import httpx

from ..decoding import ACCEPT_ENCODING
from ..egress import EgressDenied
from ..outbound import FetchFailed, HopFailed, Request, TenantTransports, fetch, url_problem
from ..results import ToolResult, bounded, error_content
from ..sandbox.common import clean_text, normalize_headers
from ..sandbox.http_failure import llm_summary
from ..spec import JavaScriptAction, PythonAction
from .base import Invocation
from .http import describe_send_error

SandboxMode = Literal["isolated", "unsafe-process"]
EGRESS_TIMEOUT_S = 10.0
EGRESS_MAX_BODY = 1 << 20


def tenant_key(inv: Invocation) -> str:
    """Whose sandbox worker and connection pool a run uses: never a default shared by strangers.

    The workspace and agent when the call names them; otherwise the function itself (its name
    and code), so two unrelated functions never share a worker.
    """
    ctx = inv.context
    workspace = f"w:{ctx.workspace_id}/" if ctx.workspace_id else ""
    if ctx.agent_id:
        return f"{workspace}a:{ctx.agent_id}"
    action = inv.function.action
    code = action.code if isinstance(action, PythonAction | JavaScriptAction) else ""
    digest = hashlib.sha256(f"{inv.function.name}\0{code}".encode()).hexdigest()[:24]
    return f"{workspace}f:{digest}"


class CodeRunner:
    """``async run(invocation) -> ToolResult`` for ``python`` and ``javascript`` actions."""

    def __init__(
        self,
        transports: TenantTransports,
        *,
        mode: SandboxMode = "isolated",
        result_max_bytes: int = 16 * 1024,
        max_response_bytes: int = EGRESS_MAX_BODY,
        max_redirects: int = 5,
    ) -> None:
        self.transports = transports
        self.mode: SandboxMode = mode
        self.result_max_bytes = result_max_bytes
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self._sandboxes: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        #: unsafe-process mode only: the one workspace it may serve (see ``_refuse_weak``)
        self._weak_workspace: str | None = None

    async def _sandbox(self, language: str) -> Any:
        async with self._lock:
            sandbox = self._sandboxes.get(language)
            if sandbox is None:
                if language == "python":
                    from ..sandbox.python import PythonSandbox

                    sandbox = PythonSandbox(mode=self.mode)
                else:
                    from ..sandbox.javascript import JavaScriptSandbox

                    sandbox = JavaScriptSandbox(mode=self.mode)
                await sandbox.start()
                self._sandboxes[language] = sandbox
            return sandbox

    async def aclose(self) -> None:
        for sandbox in self._sandboxes.values():
            await sandbox.aclose()
        self._sandboxes.clear()
        await self.transports.aclose()

    async def egress(self, tenant: str, request: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request from sandboxed code. Everything in ``request`` is untrusted.

        The engine builds the request itself: method and URL from the parsed request, the
        code's headers without framing or hop-by-hop ones (``normalize_headers``), the body
        length set here, ``Host`` from the URL. It goes out on ``tenant``'s own connection pool.
        """
        try:
            method = str(request.get("method", "GET")).upper()
            parsed = httpx.URL(str(request["url"]))
            problem = url_problem(parsed)
            url = str(parsed)
            headers, _, refused = normalize_headers(
                [[str(k), str(v)] for k, v in list(request.get("headers") or [])[:100]]
            )
            body = base64.b64decode(str(request.get("body") or ""), validate=True)
        except (KeyError, TypeError, ValueError, UnicodeError, httpx.InvalidURL) as exc:
            return {"error": f"malformed request ({clean_text(exc, 200)})"}
        if problem is not None:
            return {"error": f"invalid URL: {problem}"}
        if refused is not None:
            return {"error": f"not sent: {refused}"}
        pairs = [(k, v) for k, v in headers] + [("Accept-Encoding", ACCEPT_ENCODING)]
        req = Request(method, url, pairs, body or None)
        try:
            async with (
                asyncio.timeout(EGRESS_TIMEOUT_S),
                self.transports.transport(tenant) as transport,
            ):
                response = await fetch(
                    transport,
                    req,
                    max_body=self.max_response_bytes,
                    max_redirects=self.max_redirects,
                )
        except EgressDenied as exc:
            return {"error": f"refused by the egress policy: {exc.reason}", "denied": True}
        except TimeoutError:
            return {"error": f"no response within {EGRESS_TIMEOUT_S:.0f} s"}
        except FetchFailed as exc:
            where = f" (at {exc.hop})" if exc.hop else ""
            return {"error": f"{exc.reason}: {exc.detail}{where}"}
        except Exception as exc:
            hop = exc.error if isinstance(exc, HopFailed) else exc
            if isinstance(hop, EgressDenied):
                return {"error": f"refused by the egress policy: {hop.reason}", "denied": True}
            return {"error": describe_send_error(exc, url)[1]}
        return {
            "status": response.status,
            "headers": [[k, v] for k, v in response.headers.items()],
            "body": base64.b64encode(response.body).decode(),
        }

    async def run(self, inv: Invocation) -> ToolResult:
        action = inv.function.action
        assert isinstance(action, PythonAction | JavaScriptAction)
        result = inv.result
        entry = action.entrypoint or inv.function.name
        ctx = inv.context
        call = {
            "agent_id": ctx.agent_id,
            "call_sid": ctx.call_sid,
            "execution_id": ctx.execution_id,
            "from_number": ctx.from_number,
            "to_number": ctx.to_number,
        }
        tenant = tenant_key(inv)
        refusal = self._refuse_weak(ctx.workspace_id)
        if refusal is not None:
            return self._fail(inv, "unavailable", refusal, None)
        egress = functools.partial(self.egress, tenant)
        started = time.perf_counter()
        result.timings.time_to_request_ms = (started - inv.started) * 1000
        try:
            sandbox = await self._sandbox(action.type)
            if isinstance(action, PythonAction):
                from ..sandbox.python import Limits as PyLimits

                arguments = {k: v for k, v in inv.values.items() if k in inv.function.properties}
                for name, schema in inv.function.properties.items():
                    # `x: str | None` has no Python default: its schema default (null) fills it.
                    if name not in arguments and isinstance(schema, dict) and "default" in schema:
                        arguments[name] = schema["default"]
                context = {"call": call, "variables": dict(ctx.variables)}
                outcome = await sandbox.run(
                    action.code,
                    entry,
                    arguments,
                    context,
                    egress=egress,
                    limits=PyLimits(timeout_s=action.timeout_ms / 1000, memory_mb=action.memory_mb),
                    tenant=tenant,
                )
            else:
                from ..sandbox.javascript import Limits as JsLimits

                data = {
                    "call": call,
                    "variables": dict(ctx.variables),
                    **{k: v for k, v in inv.values.items() if k not in call},
                }
                outcome = await sandbox.run(
                    action.code,
                    entry,
                    data,
                    egress=egress,
                    limits=JsLimits(timeout_s=action.timeout_ms / 1000, memory_mb=action.memory_mb),
                    tenant=tenant,
                )
        except Exception as exc:  # SandboxUnavailable and friends: say so, never run unsandboxed
            return self._fail(inv, "unavailable", str(exc), None)
        result.timings.request_ms = (time.perf_counter() - started) * 1000
        result.logs = list(outcome.logs)
        result.sandbox = {
            "mode": self.mode,
            "stopped_by": outcome.stopped_by,
            "http": outcome.http,
            "timings": outcome.timings,
        }
        if not outcome.ok:
            # The developer's detail names the request and the engine's reason; an LLM (in-call
            # functions only) reads what it can act on.
            said = None
            if inv.function.phase == "in_call":
                said = llm_summary(outcome.http, outcome.error)
            return self._fail(
                inv, outcome.error or "failed", outcome.detail, outcome.stopped_by, said
            )
        result.ok = True
        result.data = outcome.value
        text = json.dumps(outcome.value, ensure_ascii=False, separators=(",", ":"))
        result.content, result.truncated = bounded(text, self.result_max_bytes)
        return result

    def _refuse_weak(self, workspace: str | None) -> str | None:
        """In unsafe-process mode, why this workspace's code may not run (None: it may).

        That mode gives no isolation between tenants, so it serves one workspace only: the
        first one it ran code for.
        """
        if self.mode != "unsafe-process":
            return None
        key = workspace or ""
        if self._weak_workspace is None:
            self._weak_workspace = key
        if key == self._weak_workspace:
            return None
        return (
            "unsafe-process sandbox mode serves a single workspace (it gives no isolation "
            "between tenants); run customer code of several workspaces in isolated mode"
        )

    def _fail(
        self,
        inv: Invocation,
        reason: str,
        detail: str,
        layer: str | None,
        said: str | None = None,
    ) -> ToolResult:
        """A failed run: ``data`` has the whole ``detail``; the content the LLM reads has
        ``said`` in its place when given (the short form of a failed HTTP request)."""
        result = inv.result
        payload: dict[str, Any] = {"error": "function_failed", "reason": reason, "detail": detail}
        result.ok = False
        result.error = "function_failed"
        result.data = payload
        shown = payload if said is None else {**payload, "detail": said}
        result.content, result.truncated = bounded(error_content(shown), self.result_max_bytes)
        if layer and result.sandbox is None:
            result.sandbox = {"mode": self.mode, "stopped_by": layer}
        return result
