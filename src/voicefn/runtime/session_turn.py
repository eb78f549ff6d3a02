"""The turn loop of a call: one caller turn streams LLM responses (:class:`Round`), launches each
tool call the moment its arguments close, settles the results in the order the LLM asked, and
carries out the built-ins' directives. :class:`TurnLoop` is a part of
:class:`~voicefn.runtime.session.CallSession`, which holds the state it declares."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..context import CallContext
from ..executor import Executor
from ..results import ToolResult, error_content
from ..spec import Function
from ..templates import render_text
from .agent import Agent
from .events import (
    AgentMessage,
    AgentTextDelta,
    ErrorEvent,
    ExecutionTimings,
    Filler,
    FunctionFinished,
    FunctionStarted,
    TurnFinished,
    TurnInterrupted,
)
from .llm_client import LLMError
from .session_directives import directive_events
from .session_results import (
    ExecutionRecord,
    canonical,
    completed,
    describe,
    internal_error,
    json_or_text,
    parsed,
)
from .session_round import Round, StreamedCall
from .streaming import complete_object, content_parts, field_of, merge_extra, split_objects

if TYPE_CHECKING:
    from .llm_client import LLMClient

log = logging.getLogger("voicefn.runtime")

#: What the turn's producer puts on its queue last.
DONE = object()


class TurnLoop:
    """The turn's machinery; the state it works on is the session's."""

    agent: Agent
    executor: Executor
    context: CallContext
    language: str
    model: str
    functions: dict[str, Function]
    tools: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    executions: list[ExecutionRecord]
    ended: bool
    ended_by: str | None
    transfer_number: str | None
    _done: dict[tuple[str, str], tuple[str, int | None]]
    _pending: list[StreamedCall]
    _first_token_wait: list[ExecutionRecord]

    if TYPE_CHECKING:

        @property
        def llm(self) -> LLMClient: ...

        def _store(self, function: Function, result: ToolResult) -> dict[str, Any]: ...

    async def _run_turn(self, user_text: str, queue: asyncio.Queue[Any]) -> None:
        emit = queue.put_nowait
        heard_at = time.perf_counter()
        ttft: float | None = None
        rounds = 0
        current: Round | None = None
        try:
            await self._settle_pending(emit)
            self.messages.append({"role": "user", "content": user_text})
            max_rounds = self.agent.llm.max_tool_rounds
            while True:
                tools_allowed = rounds < max_rounds
                current = Round()
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
            emit(ErrorEvent("the turn failed", describe(exc)))
            emit(TurnFinished(rounds, ttft))
        finally:
            emit(DONE)

    def _salvage(self, current: Round | None) -> None:
        if current is None:
            return
        try:
            self._abandon_round(current)
        except Exception:
            log.exception("the interrupted response could not be kept in the history")

    async def _stream_round(self, rnd: Round, tools_allowed: bool, emit: Any) -> None:
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

    def _add_fragments(self, rnd: Round, fragments: list[Any], emit: Any) -> None:
        touched: list[StreamedCall] = []
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

    def _finish_calls(self, rnd: Round, emit: Any) -> None:
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

    def _announce(self, call: StreamedCall, rnd: Round, emit: Any) -> None:
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

    def _launch(self, call: StreamedCall, rnd: Round, emit: Any) -> None:
        if not call.announced:
            self._announce(call, rnd, emit)
        call.started_at = time.perf_counter()
        call.sent_arguments = call.arguments
        function = self.functions.get(call.name)
        arguments = parsed(call.arguments)
        if function is None:
            names = ", ".join(self.functions) or "none"
            payload = {
                "error": "unknown_function",
                "detail": f"There is no function named {call.name!r}. Available: {names}.",
            }
            result = ToolResult(
                call.name, False, error_content(payload), payload, error="unknown_function"
            )
            call.task = completed(result)
        else:
            key = (call.name, canonical(arguments))
            previous = self._done.get(key)
            if previous is not None and not function.repeatable:
                call.deduplicated = True
                content, status = previous
                result = ToolResult(call.name, True, content, json_or_text(content), status)
                call.task = completed(result)
            else:  # scheduled before the event below, so the request goes out first
                call.task = asyncio.create_task(self._execute(call, function, arguments))
        emit(FunctionStarted(call.name, call.id, arguments))

    async def _execute(
        self, call: StreamedCall, function: Function, arguments: dict[str, Any] | str
    ) -> ToolResult:
        try:
            return await self.executor.run(function, arguments, self.context, tool_call_id=call.id)
        except Exception as exc:  # the call survives any exception of an execution
            log.exception("%s: the execution raised", function.name)
            call.engine_error = describe(exc)  # for the host; the LLM reads a plain error
            return internal_error(function.name, exc)

    def _commit_round(self, rnd: Round) -> None:
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

    def _abandon_round(self, rnd: Round) -> None:
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
                result = internal_error(call.name, asyncio.CancelledError())
            except Exception as exc:  # the call survives any exception of an execution
                call.engine_error = describe(exc)
                result = internal_error(call.name, exc)
            self._pending.pop(0)
            if call.engine_error:
                emit(
                    ErrorEvent(f"function {call.name} failed inside the engine", call.engine_error)
                )
            self._record(call, result, emit)

    def _record(self, call: StreamedCall, result: ToolResult, emit: Any) -> None:
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
                    "result": json_or_text(result.content),
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
            parsed(call.arguments),
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
            self._done[(call.name, canonical(parsed(call.arguments)))] = (
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
        events, ending = directive_events(directive, function)
        if ending is not None:
            self.ended = True
            self.ended_by = ending.ended_by
            if ending.ended_by == "transfer":
                self.transfer_number = ending.transfer_number
        for event in events:
            emit(event)
