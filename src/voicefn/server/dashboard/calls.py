"""The test-call page: chat with an agent through the runtime (:class:`CallSession`), events
streamed to the browser as Server-Sent Events (a POST's response, read by ``call.js``).

A test call lives in this process's memory (its history, what pre-call functions set) until it
is hung up or idle for ``IDLE_S``; a workspace has at most ``PER_WORKSPACE`` at once. Its id names
this process (:mod:`.holder`): a turn that reaches another process is told which one holds it.
Functions run on the workspace's Executor (its egress policy) and are recorded with
``source: call``. Hanging up reports the call like a host does (:func:`report_call`): it is
stored, and its post-call work becomes durable jobs.

The LLM: the agent's ``llm`` settings, else the server's environment (``OPENAI_BASE_URL``,
``OPENAI_API_KEY``, ``VOICEFN_LLM_MODEL``). A key from the environment is only ever sent to the
server's own endpoint; an endpoint the agent names gets no key and must pass the workspace's
egress policy (it is the tenant's URL, like a function's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ...egress import EgressDenied, EgressPolicy
from ...runtime import events as ev
from ...runtime.agent import Agent, LLMSettings
from ...runtime.llm_client import DEFAULT_BASE_URL, LLMClient
from ...runtime.session import CallSession
from ...store import Workspace
from ..calls import CallReport, report_call
from ..catalog import RunnableFunction, runnable_agent, runnable_function
from ..errors import ApiError
from ..platform import Platform
from . import data
from .auth import PlatformDep, ViewerDep
from .holder import Holder, missing
from .render import ID, page

log = logging.getLogger("voicefn.server")
router = APIRouter(include_in_schema=False)

IDLE_S = 15 * 60
PER_WORKSPACE = 4
MAX_TEXT = 4000


@dataclass
class LiveCall:
    id: str
    ws: Workspace
    agent_id: str
    session: CallSession
    llm: LLMClient
    functions: dict[str, RunnableFunction]
    #: set while no stream runs on the call (one turn at a time)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    used: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.idle.set()


class Calls:
    """The test calls of this process."""

    def __init__(self) -> None:
        self.holder = Holder.here()
        self._calls: dict[str, LiveCall] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, ws: Workspace, call_id: str) -> LiveCall | None:
        found = self._calls.get(call_id)
        return found if found is not None and found.ws.id == ws.id else None

    def count(self, ws: Workspace) -> int:
        return sum(c.ws.id == ws.id for c in self._calls.values())

    def add(self, call: LiveCall) -> None:
        self._calls[call.id] = call

    def expire(self) -> None:
        now = time.monotonic()
        stale = [c for c in self._calls.values() if now - c.used > IDLE_S and c.idle.is_set()]
        for call in stale:
            self.discard(call)

    def discard(self, call: LiveCall) -> None:
        if self._calls.pop(call.id, None) is not None:
            task = asyncio.get_running_loop().create_task(_close(call))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """At shutdown: every call ends (its LLM connections closed)."""
        for call in list(self._calls.values()):
            self.discard(call)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close(call: LiveCall) -> None:
    with contextlib.suppress(Exception):
        await call.session.aclose()
    with contextlib.suppress(Exception):
        await call.llm.aclose()


def calls_of(request: Request) -> Calls:
    found: Calls = request.app.state.dashboard_calls
    return found


# ------------------------------------------------------------------------------ the LLM


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    api_key: str  #: "" sends none
    #: the agent's own URL (the tenant's, so the workspace's egress policy applies)
    tenant: bool


def endpoint(settings: LLMSettings) -> Endpoint | str:
    """Where this agent's test calls go, or why they cannot be made."""
    model = settings.model or os.environ.get("VOICEFN_LLM_MODEL") or os.environ.get("OPENAI_MODEL")
    if not model:
        return (
            "No LLM model is set: give the agent an LLM model (and base URL) on its page, or "
            "start the server with VOICEFN_LLM_MODEL and OPENAI_BASE_URL / OPENAI_API_KEY."
        )
    server_url = (os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    own = (settings.base_url or "").rstrip("/")
    if own and own != server_url:
        return Endpoint(own, model, "", tenant=True)
    key = os.environ.get("OPENAI_API_KEY", "")
    if not key and not os.environ.get("OPENAI_BASE_URL") and not own:
        return (
            "No LLM endpoint is configured: set the agent's LLM base URL (any OpenAI-compatible "
            "server, e.g. http://localhost:11434/v1 for Ollama) on its page, or start the "
            "server with OPENAI_API_KEY (and OPENAI_BASE_URL)."
        )
    return Endpoint(server_url, model, key, tenant=False)


async def check_egress(platform: Platform, ws: Workspace, url: str) -> str | None:
    """Why the workspace's policy refuses ``url`` (resolving its host), or None."""
    from ...transport import EgressResolver

    policy = await platform.catalog.policy(ws)
    egress = EgressPolicy.from_strings(
        policy.allow,
        allow_private_network=policy.allow_private_network,
        https_only=policy.https_only,
    )
    try:
        egress.check_url(url)
        parts = urlsplit(url)
        if parts.hostname and not egress.allow_private_network:
            await EgressResolver(egress).resolve(parts.hostname, parts.port or 443)
    except EgressDenied as exc:
        return f"the LLM base URL is refused by this workspace's egress settings: {exc}"
    except OSError as exc:
        return f"the LLM base URL's host cannot be resolved: {exc}"
    return None


# ------------------------------------------------------------------------------ events


def _sse(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


async def _finished(
    platform: Platform, call: LiveCall, event: ev.FunctionFinished
) -> dict[str, Any]:
    result = event.result
    fn = call.functions.get(event.function)
    content = fn.redactor.text(result.content) if fn is not None else result.content
    execution_id = None
    if fn is not None and not event.deduplicated:
        execution_id, journaled = platform.record(
            call.ws, fn, result, call.session.context, event.tool_call_id, "call"
        )
        with contextlib.suppress(OSError):
            await journaled
    return {
        "function": event.function,
        "tool_call_id": event.tool_call_id,
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "content": content,
        "latency_ms": round(event.latency_ms, 1),
        "deduplicated": event.deduplicated,
        "execution_id": execution_id,
    }


async def _stream(
    platform: Platform,
    call: LiveCall,
    events: AsyncIterator[ev.Event],
    first: bytes = b"",
    *,
    wait: bool = False,
    after: Callable[[], Awaitable[bytes]] | None = None,
) -> AsyncIterator[bytes]:
    """The events as SSE, then what ``after`` gives, one stream per call at a time (taken here,
    where no await separates the check from the taking; a response never started holds
    nothing)."""
    if first:
        yield first
    if wait:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.idle.wait(), 30)
    if not call.idle.is_set():
        yield _sse("error", {"message": "the agent is still answering the last turn"})
        yield _sse("done", {"ended": call.session.ended})
        return
    call.idle.clear()
    pending_after = after
    try:
        async for event in events:
            call.used = time.monotonic()
            if isinstance(event, ev.AgentTextDelta):
                yield _sse("delta", {"text": event.text})
            elif isinstance(event, ev.AgentMessage):
                yield _sse("message", {"text": event.text})
            elif isinstance(event, ev.Filler):
                yield _sse("filler", {"text": event.text, "function": event.function})
            elif isinstance(event, ev.FunctionStarted):
                yield _sse(
                    "started",
                    {
                        "function": event.function,
                        "tool_call_id": event.tool_call_id,
                        "arguments": event.arguments,
                    },
                )
            elif isinstance(event, ev.FunctionFinished):
                yield _sse("finished", await _finished(platform, call, event))
            elif isinstance(event, ev.TransferRequested):
                yield _sse("transfer", {"number": event.number, "reason": event.reason})
            elif isinstance(event, ev.SmsRequested):
                yield _sse("sms", {"to": event.to, "body": event.body})
            elif isinstance(event, ev.CallEnded):
                yield _sse("ended", {"reason": event.reason, "message": event.message})
            elif isinstance(event, ev.ErrorEvent):
                yield _sse("error", {"message": event.message, "detail": event.detail})
            elif isinstance(event, ev.TurnFinished):
                yield _sse("turn", {"rounds": event.rounds, "ttft_ms": event.ttft_ms})
        if after is not None:
            pending_after = None
            # shielded: a browser that leaves now does not cut the report short
            yield await asyncio.shield(_background(after()))
        yield _sse("done", {"ended": call.session.ended})
    finally:
        call.used = time.monotonic()
        call.idle.set()
        if pending_after is not None:  # the browser left first: the call is reported anyway
            _background(pending_after())
        close = getattr(events, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


_BACKGROUND: set[asyncio.Future[bytes]] = set()


def _background(work: Awaitable[bytes]) -> asyncio.Future[bytes]:
    """``work`` as a task that runs to its end (kept referenced until then)."""
    task = asyncio.ensure_future(work)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)
    return task


def _streaming(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _refused(status: int, message: str) -> JSONResponse:
    return JSONResponse({"ok": False, "message": message}, status_code=status)


# ------------------------------------------------------------------------------ routes


@router.get("/agents/{agent_id}/call")
async def call_page(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.agent(platform, viewer.ws, agent_id)
    settings = LLMSettings.model_validate(record.document.get("llm") or {})
    found = endpoint(settings)
    return page(
        request,
        "call.html",
        nav="agents",
        agent=record,
        endpoint=found if isinstance(found, Endpoint) else None,
        missing=found if isinstance(found, str) else None,
    )


@router.post("/agents/{agent_id}/call")
async def start_call(
    request: Request, agent_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    record = await data.agent(platform, viewer.ws, agent_id)
    calls = calls_of(request)
    calls.expire()
    if calls.count(viewer.ws) >= PER_WORKSPACE:
        return _refused(
            429, f"{PER_WORKSPACE} test calls are open in this workspace: hang one up first."
        )
    settings = LLMSettings.model_validate(record.document.get("llm") or {})
    found = endpoint(settings)
    if isinstance(found, str):
        return _refused(409, found)
    if found.tenant:
        refused = await check_egress(platform, viewer.ws, found.base_url)
        if refused:
            return _refused(409, refused)
    runnable = runnable_agent(record)
    async with platform.store.read() as repos:
        records = await repos.functions.all(viewer.ws, record.id)
    functions = {r.name: runnable_function(r, runnable) for r in records}
    doc = record.document
    agent = Agent(
        name=record.name,
        system_prompt=str(doc.get("system_prompt") or ""),
        welcome_message=doc.get("welcome_message"),
        language=runnable.language,
        variables=runnable.variables,
        webhook_url=runnable.webhook_url,
        llm=settings.model_copy(update={"model": found.model, "base_url": found.base_url}),
        functions=[f.function for f in functions.values()],
    )
    call_id = calls.holder.new_call_id()
    llm = LLMClient(
        found.base_url,
        found.api_key,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        max_connections=4,
    )
    executor = platform.executors.get(await platform.catalog.policy(viewer.ws))
    context = platform.call_context(viewer.ws, runnable, call_sid=call_id)
    session = CallSession(agent, executor=executor, context=context, llm=llm)
    call = LiveCall(call_id, viewer.ws, record.id, session, llm, functions)
    calls.add(call)
    first = _sse("call", {"id": call_id, "model": found.model, "endpoint": llm.endpoint})
    return _streaming(_stream(platform, call, session.start(), first))


def _live(request: Request, viewer: ViewerDep, call_id: str) -> LiveCall | None:
    return calls_of(request).get(viewer.ws, call_id) if ID.match(call_id) else None


def _gone(request: Request, call_id: str) -> JSONResponse:
    return _refused(*missing(call_id, calls_of(request).holder))


@router.post("/calls/{call_id}/turn")
async def turn(
    request: Request, call_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    call = _live(request, viewer, call_id)
    if call is None:
        return _gone(request, call_id)
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return _refused(422, f"say something (1 to {MAX_TEXT} characters)")
    return _streaming(_stream(platform, call, call.session.turn(text.strip())))


@router.post("/calls/{call_id}/hangup")
async def hangup(
    request: Request, call_id: str, viewer: ViewerDep, platform: PlatformDep
) -> Response:
    calls = calls_of(request)
    call = _live(request, viewer, call_id)
    if call is None:
        return _gone(request, call_id)
    call.session.interrupt()

    async def hung_up() -> AsyncIterator[ev.Event]:
        return
        yield  # an async generator with no events: the call is reported after them

    async def report() -> bytes:
        try:
            return await _report(platform, call)
        finally:
            calls.discard(call)

    return _streaming(_stream(platform, call, hung_up(), wait=True, after=report))


async def _report(platform: Platform, call: LiveCall) -> bytes:
    """Store the finished call as the platform does; its post-call work becomes jobs."""
    session = call.session
    if session.ended_at is None:
        session.ended_at = time.time()
    try:
        report = CallReport.from_finished(session.finished_call())
        reported = await report_call(platform, call.ws, call.agent_id, report)
    except ApiError as exc:
        return _sse("error", {"message": "the call was not stored", "detail": exc.message})
    except ValueError as exc:  # the report does not validate (pydantic's error is one)
        return _sse("error", {"message": "the call was not stored", "detail": str(exc)[:500]})
    except Exception:  # the store failed: say so in the stream (it has begun), log the rest
        log.exception("dashboard: storing the test call %s failed", call.id)
        return _sse("error", {"message": "the call was not stored", "detail": "internal error"})
    stored = reported.call
    return _sse(
        "reported",
        {"call_id": stored.id, "url": f"/calls/{stored.id}", "jobs": len(reported.jobs)},
    )
