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
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from ..context import CallContext
from ..dialects.llm import context_filled
from ..dialects.llm import dump as llm_tool
from ..executor import Executor
from ..results import ToolResult, error_content
from ..spec import Function
from ..templates import render_text
from .agent import Agent
from .events import (
    AgentMessage,
    AgentTextDelta,
    CallEnded,
    ErrorEvent,
    Event,
    ExecutionTimings,
    Filler,
    FunctionFinished,
    FunctionStarted,
    PostCallFinished,
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
)
from .llm_client import LLMClient, LLMError, shared_client
from .postcall import FinishedCall, PostCallReport
from .postcall_inline import SigningSecret, check_signing_secret, finished_call, run_post_call
from .stored import store_result
from .streaming import (
    ThinkFilter,
    complete_object,
    content_parts,
    field_of,
    merge_extra,
    split_objects,
)

log = logging.getLogger("voicefn.runtime")

_DONE = object()


@dataclass
class _Call:
    """One tool call as it streams in, then runs."""

    index: int | None
    id: str = ""
    name: str = ""
    arguments: str = ""
    llm_id: str = ""  # the id the LLM gave, if any (``id`` may be generated)
    extra_content: dict[str, Any] | None = None  # provider fields to send back (Gemini)
    sent_arguments: str | None = None  # the arguments it ran with
    engine_error: str | None = None  # the execution raised (a bug of ours): for the host
    announced: bool = False
    task: asyncio.Task[ToolResult] | None = None
    deduplicated: bool = False
    filler_at: float | None = None
    started_at: float | None = None
    round_sent_at: float | None = None  # when its round's request went (no reference: no cycle)


@dataclass
class ExecutionRecord:
    """What the call summary keeps of each function execution."""

    function: str
    tool_call_id: str
    arguments: dict[str, Any] | str
    ok: bool
    error: str | None
    status: int | None
    latency_ms: float
    timings: ExecutionTimings
    deduplicated: bool = False
    content: str = ""
    finished_at: float = 0.0  # perf_counter, to measure the time to the answer's first token
    phase: str = "in_call"
    #: the variables this execution stored (its function's ``store:``)
    stored: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The execution as :class:`~voicefn.runtime.postcall.FinishedCall` keeps it."""
        t = self.timings
        return {
            "function": self.function,
            "phase": self.phase,
            "tool_call_id": self.tool_call_id,
            "arguments": self.arguments,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 3),
            "timings": {
                "time_to_filler_ms": t.time_to_filler_ms,
                "time_to_request_ms": t.time_to_request_ms,
                "request_ms": t.request_ms,
                "time_to_first_token_ms": t.time_to_first_token_ms,
            },
            "deduplicated": self.deduplicated,
            "stored": dict(self.stored),
            "content": self.content,
        }


@dataclass
class _Round:
    """One LLM response: its words, its reasoning and its tool calls, in the order they came."""

    calls: list[_Call] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)  # reasoning_content, sent back
    extra_content: dict[str, Any] | None = None  # message-level provider fields, sent back
    think: ThinkFilter = field(default_factory=ThinkFilter)
    sent_at: float = 0.0
    filler_sent: bool = False
    first_token_ms: float | None = None
    by_id: dict[str, _Call] = field(default_factory=dict)
    by_index: dict[int, _Call] = field(default_factory=dict)
    last: _Call | None = None

    def new_call(self, index: int | None, after: _Call | None = None) -> _Call:
        call = _Call(index)
        if after is not None:
            self.calls.insert(self.calls.index(after) + 1, call)
        else:
            self.calls.append(call)
        if index is not None:
            self.by_index[index] = call
        self.last = call
        return call

    def call_for(self, index: int | None, call_id: str, name: str, touched: list[_Call]) -> _Call:
        """The call a streamed fragment belongs to.

        The id decides where ids differ: a new id is a new call even at an index already
        used (providers that give every parallel call index 0) or with no index at all.
        Without an id, the index decides; without either, the fragment continues the last
        call, unless it names a function while that call's arguments are already whole, or
        names another function once that call has arguments (or came earlier in this delta).
        """
        if call_id:
            known = self.by_id.get(call_id)
            if known is not None:
                return known
            slot = self.by_index.get(index) if index is not None else self.last
            # An id arriving after the call's first fragment names that call; else a new one.
            call = slot if slot is not None and not slot.llm_id else self.new_call(index)
            call.llm_id = call_id
            if not call.announced:
                call.id = call_id
            self.by_id[call_id] = call
            return call
        if index is not None:
            known = self.by_index.get(index)
            return known if known is not None else self.new_call(index)
        slot = self.last
        if slot is None:
            return self.new_call(None)
        if name and slot.name:
            if complete_object(slot.arguments):
                return self.new_call(None)
            if name != slot.name and (slot.arguments or slot in touched):
                return self.new_call(None)
        return slot


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


def _canonical(arguments: dict[str, Any] | str) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def _parsed(raw: str) -> dict[str, Any] | str:
    try:
        value = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        return raw
    return value if isinstance(value, dict) else raw


def _internal_error(function: str, exc: BaseException) -> ToolResult:
    payload = {
        "error": "function_failed",
        "reason": "internal",
        "detail": "The function could not run because of an internal error.",
    }
    return ToolResult(function, False, error_content(payload), payload, error="function_failed")


class CallSession:
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
        self._pending: list[_Call] = []
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
                            _describe(exc),
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
                if item is _DONE:
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
            yield ErrorEvent(f"function {function.name} failed inside the engine", _describe(exc))
            result = _internal_error(function.name, exc)
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

    # ------------------------------------------------------------------ the turn

    async def _run_turn(self, user_text: str, queue: asyncio.Queue[Any]) -> None:
        emit = queue.put_nowait
        heard_at = time.perf_counter()
        ttft: float | None = None
        rounds = 0
        current: _Round | None = None
        try:
            await self._settle_pending(emit)
            self.messages.append({"role": "user", "content": user_text})
            max_rounds = self.agent.llm.max_tool_rounds
            while True:
                tools_allowed = rounds < max_rounds
                current = _Round()
                await self._stream_round(current, tools_allowed, emit)
                rounds += 1
                if ttft is None and current.first_token_ms is not None:
                    ttft = (current.sent_at - heard_at) * 1000 + current.first_token_ms
                if not current.calls:
                    text = "".join(current.text)
                    self.messages.append({"role": "assistant", "content": text})
                    emit(AgentMessage(text))
                    break
                if current.text:  # said in the same response as the tool calls
                    emit(AgentMessage("".join(current.text)))
                self._commit_round(current)
                current = None
                await self._settle_pending(emit)
                if self.ended:
                    break
            emit(TurnFinished(rounds, ttft))
        except asyncio.CancelledError:
            if current is not None:
                self._abandon_round(current)
            emit(TurnInterrupted([c.name for c in self._pending]))
            raise
        except LLMError as exc:
            # The caller's words stay in the history; the next turn tries again.
            self._salvage(current)
            emit(ErrorEvent("the LLM request failed", str(exc)))
            emit(TurnFinished(rounds, ttft))
        except Exception as exc:
            # Whatever went wrong (a provider's odd stream, a bug of ours), the call goes on:
            # what was said and what was sent stay in the history, the next turn works.
            log.exception("the turn failed")
            self._salvage(current)
            emit(ErrorEvent("the turn failed", _describe(exc)))
            emit(TurnFinished(rounds, ttft))
        finally:
            emit(_DONE)

    def _salvage(self, current: _Round | None) -> None:
        if current is None:
            return
        try:
            self._abandon_round(current)
        except Exception:
            log.exception("the interrupted response could not be kept in the history")

    async def _stream_round(self, rnd: _Round, tools_allowed: bool, emit: Any) -> None:
        options: dict[str, Any] = {}
        if self.tools:
            options["tools"] = self.tools
            if not tools_allowed:
                options["tool_choice"] = "none"
        if self.agent.llm.temperature is not None:
            options["temperature"] = self.agent.llm.temperature
        rnd.sent_at = time.perf_counter()
        first_token: float | None = None

        def speak(text: str) -> None:
            nonlocal first_token
            if not text:
                return
            if first_token is None:
                first_token = time.perf_counter()
                self._mark_first_token(first_token)
            rnd.text.append(text)
            emit(AgentTextDelta(text))

        async with self.llm.stream(self.model, self.messages, **options) as chunks:
            async for chunk in chunks:
                choices = chunk.get("choices")
                if not choices or not isinstance(choices, list):
                    continue  # usage, prompt filter results
                # Azure's asynchronous content filter sends choices with no delta at all.
                delta = field_of(choices[0], "delta")
                if not isinstance(delta, dict):
                    continue
                content = delta.get("content")
                if content:
                    text, thinking = content_parts(content)
                    if thinking:
                        rnd.reasoning.append(thinking)
                    if text:
                        speak(rnd.think.feed(text))
                reasoning = delta.get("reasoning_content")
                if reasoning and isinstance(reasoning, str):
                    rnd.reasoning.append(reasoning)
                extra = delta.get("extra_content")
                if extra and isinstance(extra, dict):
                    rnd.extra_content = merge_extra(rnd.extra_content, extra)
                fragments = delta.get("tool_calls")
                if fragments and isinstance(fragments, list):
                    self._add_fragments(rnd, fragments, emit)
            speak(rnd.think.flush())
            self._finish_calls(rnd, emit)
        if first_token is not None:
            rnd.first_token_ms = (first_token - rnd.sent_at) * 1000

    def _add_fragments(self, rnd: _Round, fragments: list[Any], emit: Any) -> None:
        touched: list[_Call] = []
        for tc in fragments:
            index = field_of(tc, "index")
            call_id = field_of(tc, "id")
            function = field_of(tc, "function")
            name = field_of(function, "name")
            arguments = field_of(function, "arguments")
            name = name if isinstance(name, str) else ""
            call = rnd.call_for(
                index if isinstance(index, int) else None,
                call_id if isinstance(call_id, str) else "",
                name,
                touched,
            )
            touched.append(call)
            rnd.last = call
            if name and name != call.name:  # some providers repeat the whole name
                call.name += name
            if isinstance(arguments, str) and arguments:
                call.arguments += arguments
            extra = field_of(tc, "extra_content")
            if isinstance(extra, dict):
                call.extra_content = merge_extra(call.extra_content, extra)
            if not call.announced and (call.name in self.functions or call.arguments):
                self._announce(call, rnd, emit)
            # Launch the moment its arguments close, whatever the other calls are doing.
            if call.task is None and call.name and complete_object(call.arguments):
                self._launch(call, rnd, emit)

    def _finish_calls(self, rnd: _Round, emit: Any) -> None:
        """The stream ended: split whole objects written back to back into their own calls,
        name a nameless call after the one before it at the same index, launch the rest."""
        for call in list(rnd.calls):
            parts = split_objects(call.arguments)
            if parts is None:
                continue
            call.arguments = parts[0]
            previous = call
            for raw in parts[1:]:
                extra = rnd.new_call(call.index, after=previous)
                extra.name, extra.arguments = call.name, raw
                previous = extra
        for i, call in enumerate(rnd.calls):
            if not call.name and i > 0 and rnd.calls[i - 1].index == call.index:
                call.name = rnd.calls[i - 1].name
        for call in rnd.calls:
            if call.task is None:
                self._launch(call, rnd, emit)

    def _announce(self, call: _Call, rnd: _Round, emit: Any) -> None:
        call.announced = True
        if not call.id:
            call.id = f"call_{uuid.uuid4().hex[:24]}"
        if rnd.text or rnd.filler_sent:
            return  # the agent already spoke in this response: no filler
        function = self.functions.get(call.name)
        line = function.filler_for(self.language) if function else None
        if line:
            rnd.filler_sent = True
            call.filler_at = time.perf_counter()
            emit(Filler(render_text(line, self.context.as_variables()), call.name, call.id))

    def _launch(self, call: _Call, rnd: _Round, emit: Any) -> None:
        if not call.announced:
            self._announce(call, rnd, emit)
        call.started_at = time.perf_counter()
        call.sent_arguments = call.arguments
        function = self.functions.get(call.name)
        arguments = _parsed(call.arguments)
        if function is None:
            names = ", ".join(self.functions) or "none"
            payload = {
                "error": "unknown_function",
                "detail": f"There is no function named {call.name!r}. Available: {names}.",
            }
            result = ToolResult(
                call.name, False, error_content(payload), payload, error="unknown_function"
            )
            call.task = _completed(result)
        else:
            key = (call.name, _canonical(arguments))
            previous = self._done.get(key)
            if previous is not None and not function.repeatable:
                call.deduplicated = True
                content, status = previous
                result = ToolResult(call.name, True, content, _json_or_text(content), status)
                call.task = _completed(result)
            else:  # scheduled before the event below, so the request goes out first
                call.task = asyncio.create_task(self._execute(call, function, arguments))
        emit(FunctionStarted(call.name, call.id, arguments))

    async def _execute(
        self, call: _Call, function: Function, arguments: dict[str, Any] | str
    ) -> ToolResult:
        try:
            return await self.executor.run(function, arguments, self.context, tool_call_id=call.id)
        except Exception as exc:  # the call survives any exception of an execution
            log.exception("%s: the execution raised", function.name)
            call.engine_error = _describe(exc)  # for the host; the LLM reads a plain error
            return _internal_error(function.name, exc)

    def _commit_round(self, rnd: _Round) -> None:
        """The assistant message with its tool calls goes into the history; results follow.

        Provider fields the next request needs go back with it: DeepSeek's
        ``reasoning_content`` (required while the model works through tool calls) and Gemini's
        ``extra_content`` thought signatures, on the message and on each tool call."""
        calls = rnd.calls
        text = "".join(rnd.text)
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if rnd.reasoning:
            message["reasoning_content"] = "".join(rnd.reasoning)
        if rnd.extra_content:
            message["extra_content"] = rnd.extra_content
        tool_calls: list[dict[str, Any]] = []
        for c in calls:
            entry: dict[str, Any] = {
                "id": c.id,
                "type": "function",
                "function": {
                    "name": c.name,
                    "arguments": (c.sent_arguments if c.sent_arguments is not None else c.arguments)
                    or "{}",
                },
            }
            if c.extra_content:
                entry["extra_content"] = c.extra_content
            tool_calls.append(entry)
        message["tool_calls"] = tool_calls
        self.messages.append(message)
        for c in calls:
            c.round_sent_at = rnd.sent_at
        self._pending.extend(calls)

    def _abandon_round(self, rnd: _Round) -> None:
        """Interrupted mid-stream: keep what was said and what was sent, drop the rest."""
        started = [c for c in rnd.calls if c.task is not None and c.name]
        if started:
            rnd.calls = started
            self._commit_round(rnd)
        elif rnd.text:
            self.messages.append({"role": "assistant", "content": "".join(rnd.text)})

    async def _settle_pending(self, emit: Any) -> None:
        """Await the functions in flight, in the order the LLM asked, and record their results."""
        while self._pending:
            call = self._pending[0]
            assert call.task is not None
            try:
                result = await asyncio.shield(call.task)
            except asyncio.CancelledError:
                if not call.task.cancelled():
                    raise  # this turn was cancelled; the function goes on
                result = _internal_error(call.name, asyncio.CancelledError())
            except Exception as exc:  # the call survives any exception of an execution
                call.engine_error = _describe(exc)
                result = _internal_error(call.name, exc)
            self._pending.pop(0)
            if call.engine_error:
                emit(
                    ErrorEvent(f"function {call.name} failed inside the engine", call.engine_error)
                )
            self._record(call, result, emit)

    def _record(self, call: _Call, result: ToolResult, emit: Any) -> None:
        now = time.perf_counter()
        base = call.round_sent_at or call.started_at or now
        timings = ExecutionTimings(
            time_to_filler_ms=(call.filler_at - base) * 1000 if call.filler_at else None,
            time_to_request_ms=(
                (call.started_at - base) * 1000 + (result.timings.time_to_request_ms or 0)
                if call.started_at and result.request is not None and not call.deduplicated
                else None
            ),
            request_ms=None if call.deduplicated else result.timings.request_ms,
        )
        latency = (now - call.started_at) * 1000 if call.started_at else 0.0
        content = result.content
        if call.deduplicated:
            content = error_content(
                {
                    "note": "Already done earlier in this call with the same values; not sent again.",
                    "result": _json_or_text(result.content),
                }
            )
        self.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})
        function = self.functions.get(call.name)
        stored = (
            self._store(function, result) if function is not None and not call.deduplicated else {}
        )
        record = ExecutionRecord(
            call.name,
            call.id,
            _parsed(call.arguments),
            result.ok,
            result.error,
            result.status,
            latency,
            timings,
            call.deduplicated,
            content,
            now,
            "in_call",
            stored,
        )
        self.executions.append(record)
        self._first_token_wait.append(record)
        remember = function is not None and not function.repeatable
        if remember and result.ok and result.request is not None and not call.deduplicated:
            self._done[(call.name, _canonical(_parsed(call.arguments)))] = (
                result.content,
                result.status,
            )
        emit(FunctionFinished(call.name, call.id, result, latency, timings, call.deduplicated))
        if result.ok and result.directive and not call.deduplicated:
            self._carry_out(result.directive, call.name, emit)

    def _mark_first_token(self, at: float) -> None:
        """Time-to-first-token of the answer that follows a function's result."""
        waiting, self._first_token_wait = self._first_token_wait, []
        for record in waiting:
            record.timings = replace(
                record.timings, time_to_first_token_ms=(at - record.finished_at) * 1000
            )

    def _carry_out(self, directive: dict[str, Any], function: str, emit: Any) -> None:
        kind = directive.get("builtin")
        if kind == "transfer_call":
            emit(
                TransferRequested(
                    directive["number"],
                    directive.get("reason"),
                    directive.get("call_sid"),
                    function,
                )
            )
            self.ended = True
            self.ended_by = "transfer"
            self.transfer_number = directive["number"]
            emit(CallEnded("transferred"))
        elif kind == "send_sms":
            emit(SmsRequested(directive["to"], directive.get("from"), directive["body"], function))
        elif kind == "end_call":
            self.ended = True
            self.ended_by = "agent"
            emit(CallEnded("agent_ended", directive.get("message")))


def _json_or_text(content: str) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content


def _completed(result: ToolResult) -> asyncio.Task[ToolResult]:
    async def done() -> ToolResult:
        return result

    return asyncio.get_running_loop().create_task(done())


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
