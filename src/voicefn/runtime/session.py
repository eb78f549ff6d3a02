"""One call: the streaming LLM loop that uses the agent's functions.

The tool-call path is built for latency. The filler is emitted the moment a streamed tool name is
known; the function starts the moment its arguments are complete (the JSON object closes), while
the LLM is still streaming and the filler is still being spoken; several calls run concurrently
and their results go back in the order the LLM asked. The LLM is reached through one client per
endpoint shared by every call of the process (:mod:`voicefn.runtime.llm_client`): a session costs
a few kilobytes, and a turn's requests are serialised once, never copied.

    session = CallSession(agent, executor=ex, context=ctx)
    async for event in session.start():            # the welcome message
        ...
    async for event in session.turn("Where is my order ORD-1?"):
        ...                                         # AgentTextDelta, Filler, FunctionFinished, ...
    session.interrupt()                             # from another task: the caller barged in

The parts live beside it: the turn loop (:mod:`.session_turn`), a streamed response and its tool
calls (:mod:`.session_round`), the execution records (:mod:`.session_results`) and the
built-ins' directives (:mod:`.session_directives`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from ..context import CallContext
from ..dialects.llm import context_filled
from ..dialects.llm import dump as llm_tool
from ..executor import Executor
from ..results import ToolResult
from ..spec import Function
from ..templates import render_text
from .agent import Agent
from .events import (
    AgentMessage,
    ErrorEvent,
    Event,
    ExecutionTimings,
    FunctionFinished,
    FunctionStarted,
    PostCallFinished,
    TurnInterrupted,
)
from .llm_client import LLMClient, shared_client
from .postcall import FinishedCall, PostCallReport
from .postcall_inline import SigningSecret, check_signing_secret, finished_call, run_post_call
from .session_results import ExecutionRecord, describe, internal_error
from .session_round import StreamedCall
from .session_turn import DONE, TurnLoop
from .stored import store_result

__all__ = ["CallSession", "ExecutionRecord"]

log = logging.getLogger("voicefn.runtime")


#: (id(function), parameters the context fills) -> (function, its tool): the tools of a
#: thousand calls of one agent are the same few objects (memory, and dicts the garbage collector
#: would otherwise visit once per call). The function is kept so that its id stays its own.
_TOOLS: OrderedDict[tuple[int, frozenset[str]], tuple[Function, dict[str, Any]]] = OrderedDict()
_TOOLS_KEPT = 1024


def _tool(function: Function, context: CallContext) -> dict[str, Any]:
    """The function as the LLM sees it (read-only: shared by the calls whose context fills the
    same parameters, which is all the context changes in it)."""
    key = (id(function), frozenset(context_filled(function, context)))
    known = _TOOLS.get(key)
    if known is not None and known[0] is function:
        _TOOLS.move_to_end(key)
        return known[1]
    tool = llm_tool(function, "openai", context)
    _TOOLS[key] = (function, tool)
    if len(_TOOLS) > _TOOLS_KEPT:
        _TOOLS.popitem(last=False)
    return tool


class CallSession(TurnLoop):
    """Runs one call over an OpenAI-compatible chat-completions endpoint, streaming throughout."""

    def __init__(
        self,
        agent: Agent,
        *,
        executor: Executor,
        context: CallContext | None = None,
        llm: LLMClient | None = None,
        language: str | None = None,
        signing_secret: SigningSecret | None = None,
    ) -> None:
        check_signing_secret(signing_secret)
        self.agent = agent
        #: signs the agent webhook after the call (Standard Webhooks; None: unsigned)
        self.signing_secret = signing_secret
        self.executor = executor
        ctx = context or CallContext()
        self.context = replace(
            ctx,
            agent_id=ctx.agent_id or agent.name,
            variables={**agent.variables, **ctx.variables},
            webhook_url=ctx.webhook_url or agent.webhook_url,
        )
        self.language = language or agent.language
        self.model = agent.llm.resolved_model()
        self._llm = llm  # None: the process's shared client for the agent's settings
        self.functions: dict[str, Function] = {
            f.name: f for f in agent.functions if f.phase == "in_call"
        }
        self.system_prompt = agent.system_prompt
        self.tools: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": ""}]
        self._refresh()
        self.executions: list[ExecutionRecord] = []
        self.ended = False
        #: UNIX time the call started (``start()`` resets it) and ended (``finish()``).
        self.started_at = time.time()
        self.ended_at: float | None = None
        #: agent (end_call) or transfer (transfer_call) once the call ended that way
        self.ended_by: str | None = None
        self.transfer_number: str | None = None
        #: what ``finish()`` did after the call
        self.post_call: PostCallReport | None = None
        # (function, canonical arguments) -> (content, status) of what was sent and succeeded;
        # plain strings and numbers, which the garbage collector does not have to visit.
        self._done: dict[tuple[str, str], tuple[str, int | None]] = {}
        self._pending: list[StreamedCall] = []
        self._producer: asyncio.Task[None] | None = None
        self._first_token_wait: list[ExecutionRecord] = []

    # ------------------------------------------------------------------ public API

    async def __aenter__(self) -> CallSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def llm(self) -> LLMClient:
        """The LLM client: the one given, else the running loop's shared client for the
        agent's ``llm`` settings (one per endpoint, key and settings; see
        :func:`~voicefn.runtime.llm_client.shared_client`)."""
        if self._llm is None:
            self._llm = shared_client(self.agent.llm)
        return self._llm

    async def aclose(self) -> None:
        """End the session: stop the turn in progress, let sent functions finish. The LLM
        client is shared (or the caller's) and stays open."""
        self.interrupt()
        if self._producer is not None:
            await asyncio.gather(self._producer, return_exceptions=True)
        pending = [c.task for c in self._pending if c.task is not None]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _refresh(self) -> None:
        """Tools and system prompt from the current context (pre-call functions may change it)."""
        self.tools = [_tool(f, self.context) for f in self.functions.values()]
        variables = self.context.as_variables()
        self.messages[0] = {"role": "system", "content": render_text(self.system_prompt, variables)}

    async def start(self) -> AsyncIterator[Event]:
        """Before the first turn: run the pre-call functions, then say the welcome message.

        A pre-call function (any action) gets its arguments from the call context; when its
        result is an object, ``variables`` (an object) are merged into the call's variables and
        ``system_prompt`` (a string) replaces the prompt. A failing one is reported and skipped.
        Its ``store:`` values join the variables too.
        """
        self.started_at = time.time()
        for function in self.agent.functions:
            if function.phase == "pre_call":
                result = None
                async for event in self._run_phase(function, {}):
                    yield event
                    if isinstance(event, FunctionFinished):
                        result = event.result
                if result is not None and result.ok and isinstance(result.data, dict):
                    try:
                        self._apply_pre_call(result.data)
                    except Exception as exc:
                        log.exception(
                            "pre-call function %s: its result could not be applied", function.name
                        )
                        yield ErrorEvent(
                            f"the result of pre-call function {function.name} could not be applied",
                            describe(exc),
                        )
        if self.agent.welcome_message:
            text = render_text(self.agent.welcome_message, self.context.as_variables())
            self.messages.append({"role": "assistant", "content": text})
            yield AgentMessage(text)

    async def turn(self, user_text: str) -> AsyncIterator[Event]:
        """Run one caller turn; yields events as they happen."""
        if self.ended:
            yield ErrorEvent("the call has ended")
            return
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._producer = asyncio.create_task(self._run_turn(user_text, queue))
        try:
            while True:
                item = await queue.get()
                if item is DONE:
                    break
                yield item
        finally:
            if not self._producer.done():
                self._producer.cancel()
                await asyncio.gather(self._producer, return_exceptions=True)
                while not queue.empty():
                    item = queue.get_nowait()
                    if isinstance(item, TurnInterrupted):
                        break
            self._producer = None

    def transcript(self) -> list[dict[str, str]]:
        """What was said, in order: the caller's and the agent's words (no tool traffic)."""
        return [
            {"role": "agent" if m["role"] == "assistant" else "caller", "text": m["content"]}
            for m in self.messages[1:]
            if m["role"] in ("user", "assistant") and m.get("content")
        ]

    def finished_call(self, ended_by: str | None = None) -> FinishedCall:
        """The call as post-call work sees it (ids, numbers, times, how it ended, variables,
        transcript, executions). ``ended_by`` defaults to how the call ended: ``agent``
        (end_call), ``transfer`` (transfer_call), else ``caller`` (hung up)."""
        return finished_call(
            self.context,
            agent_name=self.agent.name,
            language=self.language,
            started_at=self.started_at,
            ended_at=self.ended_at,
            ended_by=ended_by or self.ended_by or "caller",
            transfer_number=self.transfer_number,
            transcript=self.transcript(),
            executions=[e.to_dict() for e in self.executions],
        )

    async def finish(self, *, ended_by: str | None = None) -> AsyncIterator[Event]:
        """After hang-up, in order: extract the agent's post-call variables (one LLM request),
        run each post-call function with its mapping (or the whole call data: ``call``,
        ``variables``, ``post_call``, ``transcript``, ``executions``), then send the execution
        record to the agent webhook. Each step runs once; a failure is reported (an
        ``ErrorEvent``, a failed ``FunctionFinished``) and the next step still runs. The last
        event is :class:`PostCallFinished`; ``self.post_call`` keeps the report."""
        if self.ended_at is None:
            self.ended_at = time.time()
        call = self.finished_call(ended_by)
        events = run_post_call(
            self.agent, call, self.executor, self.llm, signing_secret=self.signing_secret
        )
        async for event in events:
            if isinstance(event, FunctionFinished):
                result = event.result
                self.executions.append(
                    ExecutionRecord(
                        event.function,
                        event.tool_call_id,
                        result.arguments,
                        result.ok,
                        result.error,
                        result.status,
                        event.latency_ms,
                        event.timings,
                        False,
                        result.content,
                        time.perf_counter(),
                        "post_call",
                    )
                )
            elif isinstance(event, PostCallFinished):
                self.post_call = event.report
            yield event

    async def _run_phase(self, function: Function, data: dict[str, Any]) -> AsyncIterator[Event]:
        """Run a pre- or post-call function once (not an LLM tool call) and record it."""
        call_id = f"{function.phase}_{function.name}"
        started = time.perf_counter()
        yield FunctionStarted(function.name, call_id, {})
        try:
            result = await self.executor.run(function, data, self.context, tool_call_id=call_id)
        except Exception as exc:  # the call survives any exception of an execution
            log.exception("%s: the execution raised", function.name)
            yield ErrorEvent(f"function {function.name} failed inside the engine", describe(exc))
            result = internal_error(function.name, exc)
        now = time.perf_counter()
        latency = (now - started) * 1000
        timings = ExecutionTimings(
            None, result.timings.time_to_request_ms, result.timings.request_ms
        )
        stored = self._store(function, result)
        self.executions.append(
            ExecutionRecord(
                function.name,
                call_id,
                dict(result.arguments),
                result.ok,
                result.error,
                result.status,
                latency,
                timings,
                False,
                result.content,
                now,
                function.phase,
                stored,
            )
        )
        yield FunctionFinished(function.name, call_id, result, latency, timings)

    def _store(self, function: Function, result: ToolResult) -> dict[str, Any]:
        """A successful result's ``store:`` values join the call's variables (and so the
        prompt, fillers, later functions' templates and the post-call mapping)."""
        self.context, values = store_result(self.context, function, result)
        if values:
            self._refresh()
        return values

    def _apply_pre_call(self, data: dict[str, Any]) -> None:
        variables = data.get("variables")
        if isinstance(variables, dict):
            merged = {**self.context.variables, **{str(k): v for k, v in variables.items()}}
            self.context = replace(self.context, variables=merged)
        prompt = data.get("system_prompt")
        if isinstance(prompt, str) and prompt.strip():
            self.system_prompt = prompt
        self._refresh()

    def interrupt(self) -> None:
        """Cancel the turn in progress (caller barge-in). Functions already sent are not
        cancelled or re-sent; their results join the history before the next turn."""
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()
