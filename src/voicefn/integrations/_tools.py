"""What every voice-framework adapter shares: the functions, the call's context, fillers, the
schemas the LLM sees, and running a tool call once.

A framework hands us ``(name, arguments, tool_call_id)``; :class:`FunctionRunner` runs it on the
shared :class:`~voicefn.executor.Executor` with the call's :class:`~voicefn.context.CallContext`.
A side-effecting call (not a GET, unless ``allow_repeat``) is sent once per call and arguments,
like :class:`~voicefn.runtime.session.CallSession` does: the same call made again while the first
is in flight joins it, and made again after it succeeded reads the earlier result with a note.
That is what keeps a barge-in, or an LLM that repeats itself, from booking twice. Such a call also
keeps running when the framework cancels the tool (an interruption): a request that was sent
finishes, and its result is remembered.

As in :class:`~voicefn.runtime.session.CallSession`, a successful result's ``store:`` values join
the call's variables (later calls' templates and fillers see them), and every tool call is kept
as an execution for the post-call work (:meth:`FunctionRunner.finished_call`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..context import CallContext
from ..dialects.llm import llm_parameters
from ..executor import Executor
from ..results import ToolResult, error_content
from ..runtime.agent import Agent
from ..runtime.events import ExecutionTimings
from ..runtime.postcall import FinishedCall
from ..runtime.postcall_inline import finished_call
from ..runtime.session import ExecutionRecord
from ..runtime.stored import store_result
from ..spec import Function
from ..templates import render_text

log = logging.getLogger("voicefn.integrations")

#: What the LLM reads, around the earlier result, when a call is not sent again.
ALREADY_DONE = "Already done earlier in this call with the same values; not sent again."


class SmsSender(Protocol):
    """Sends a text message (``voicefn.telephony.twilio.TwilioTelephony`` is one)."""

    async def send_sms(self, to: str, body: str, *, from_: str | None = None) -> str: ...


class Telephony(SmsSender, Protocol):
    """Transfers a live call and sends text messages (``TwilioTelephony`` is one)."""

    async def transfer(self, call_sid: str, number: str, *, announce: str | None = None) -> str: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One tool call's result, and what the LLM reads of it."""

    result: ToolResult
    #: What the LLM reads: the result's content, or the earlier result with a note.
    content: str
    #: Not sent: the same call already ran (or was running) in this call.
    deduplicated: bool = False


def in_call_functions(functions: Agent | Iterable[Function]) -> tuple[Agent | None, list[Function]]:
    """An agent's in-call functions, or a list of functions (which must all be in-call)."""
    if isinstance(functions, Agent):
        return functions, [f for f in functions.functions if f.phase == "in_call"]
    listed = list(functions)
    for f in listed:
        if not isinstance(f, Function):
            raise TypeError(f"expected voicefn.Function objects, got {type(f).__name__}")
        if f.phase != "in_call":
            raise ValueError(
                f"{f.name} is a {f.phase} function: only in-call functions can be tools "
                "(pass the agent to keep its pre-call and post-call functions out)"
            )
    names = [f.name for f in listed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"two functions are named {duplicates[0]!r}: the LLM calls them by name")
    return None, listed


def merge_context(base: CallContext | None, over: CallContext | None) -> CallContext:
    """``over``'s values where it has them, ``base``'s elsewhere; variables merged (over wins)."""
    if base is None:
        return over or CallContext()
    if over is None:
        return base
    return replace(
        over,
        agent_id=over.agent_id or base.agent_id,
        call_sid=over.call_sid or base.call_sid,
        from_number=over.from_number or base.from_number,
        to_number=over.to_number or base.to_number,
        variables={**base.variables, **over.variables},
        webhook_url=over.webhook_url or base.webhook_url,
        workspace_id=over.workspace_id or base.workspace_id,
    )


def short_error(result: ToolResult, limit: int = 600) -> str:
    """The failure in one line the LLM can act on: the engine's ``detail`` (which says what to
    ask the caller for, or what went wrong), plus the API's own message when it gave one."""
    data = result.data if isinstance(result.data, dict) else {}
    shown = _shown_detail(result.content) if result.error == "function_failed" else None
    detail = shown or data.get("detail")
    message = detail if isinstance(detail, str) and detail else None
    if message is None:
        message = str(data.get("error") or result.error or result.content or "The function failed.")
    said = _api_message(data.get("body"))
    if said and said not in message:
        message = f"{message}: {said}"
    return message if len(message) <= limit else message[: limit - 1] + "…"


def _shown_detail(content: str) -> str | None:
    """The ``detail`` of the content the LLM reads for a failed code function: its failed
    request is said there in a short form (``data`` keeps the developer's full one, with the
    URL and the fix)."""
    try:
        shown = json.loads(content)
    except ValueError:
        return None  # not JSON, or cut short: the data's detail then
    detail = shown.get("detail") if isinstance(shown, dict) else None
    return detail if isinstance(detail, str) and detail else None


def _api_message(body: Any) -> str | None:
    if isinstance(body, str):
        text = body.strip()
        return text if 0 < len(text) <= 200 and "\n" not in text else None
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "error", "title", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:200]
            if isinstance(value, dict):  # {"error": {"message": ...}}
                inner = _api_message(value)
                if inner:
                    return inner
    return None


def parsed_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any] | str:
    """The LLM's arguments as an object, or the raw text when it is not a JSON object."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        value = json.loads(arguments or "{}")
    except (ValueError, RecursionError):
        return arguments
    return value if isinstance(value, dict) else arguments


def _canonical(arguments: dict[str, Any] | str) -> str:
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(arguments)


def _json_or_text(content: str) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return content


class FunctionRunner:
    """The functions of one call, run on a shared Executor with that call's context.

    Create one per call (it remembers what was sent in that call); share the Executor between
    calls.
    """

    def __init__(
        self,
        functions: Agent | Iterable[Function],
        executor: Executor,
        context: CallContext | None = None,
        *,
        language: str | None = None,
    ) -> None:
        self.agent, listed = in_call_functions(functions)
        self.functions: dict[str, Function] = {f.name: f for f in listed}
        self.executor = executor
        self.language = language or (self.agent.language if self.agent is not None else None)
        self.context = CallContext()
        self._variables: dict[str, Any] = {}
        self._schemas: dict[str, dict[str, Any]] = {}
        #: every tool call of this call, in the order they finished (deduplicated ones too)
        self.executions: list[ExecutionRecord] = []
        #: what ``store:`` put into the call's variables so far (kept over a new context)
        self.stored: dict[str, Any] = {}
        #: UNIX time the call started (the adapter resets it when the framework starts the
        #: agent) and how it ended, if the adapter carried out ``end_call`` (``agent``) or
        #: ``transfer_call`` (``transfer``)
        self.started_at = time.time()
        self.ended_by: str | None = None
        self.transfer_number: str | None = None
        # (name, canonical arguments) -> (content, status) of side-effecting calls that were sent
        # and succeeded; and the ones in flight, which a repeat joins instead of sending again.
        self._done: dict[tuple[str, str], tuple[str, int | None]] = {}
        self._inflight: dict[tuple[str, str], asyncio.Task[ToolResult]] = {}
        self.set_context(context)

    def set_context(self, context: CallContext | None) -> None:
        """Use ``context`` for this call from now on (with the agent's variables and name under
        it); the schemas are rebuilt, since the parameters the context fills are hidden."""
        ctx = self.agent.call_context(context) if self.agent is not None else context
        ctx = ctx or CallContext()
        if self.stored:
            ctx = replace(ctx, variables={**ctx.variables, **self.stored})
        self.context = ctx
        self._refresh()

    def _refresh(self) -> None:
        self._variables = self.context.as_variables()
        self._schemas = {
            name: {
                "name": name,
                "description": f.description,
                "parameters": llm_parameters(f, self.context),
            }
            for name, f in self.functions.items()
        }

    def schema(self, name: str) -> dict[str, Any]:
        """``{name, description, parameters}``: what the LLM sees, context-filled parameters
        removed."""
        return self._schemas[name]

    def filler(self, name: str) -> str | None:
        """The line to say while ``name`` runs, in the call's language, variables filled."""
        function = self.functions.get(name)
        line = function.filler_for(self.language) if function is not None else None
        return render_text(line, self._variables) if line else None

    def render(self, text: str | None) -> str | None:
        """``{variable}`` placeholders of the call filled (prompts, welcome messages)."""
        return render_text(text, self._variables) if text else text

    async def run(
        self,
        function: Function,
        arguments: str | Mapping[str, Any] | None,
        tool_call_id: str | None = None,
    ) -> Outcome:
        """Run one tool call. Never raises for the call's own problems (they are results)."""
        started = time.perf_counter()
        if function.repeatable:
            result = await self.executor.run(
                function, arguments, self.context, tool_call_id=tool_call_id
            )
            self._record(function, arguments, tool_call_id, result, started)
            return Outcome(result, result.content)
        key = (function.name, _canonical(parsed_arguments(arguments)))
        done = self._done.get(key)
        if done is not None:
            content, status = done
            earlier = ToolResult(function.name, True, content, _json_or_text(content), status)
            outcome = Outcome(earlier, _noted(content), deduplicated=True)
            self._record(function, arguments, tool_call_id, earlier, started, outcome)
            return outcome
        task = self._inflight.get(key)
        joined = task is not None
        if task is None:
            # A task of its own, so that cancelling the tool (an interruption) does not cancel
            # a request that is already on its way: it finishes and is remembered.
            task = asyncio.create_task(self._send(key, function, arguments, tool_call_id))
            self._inflight[key] = task
        result = await asyncio.shield(task)
        if not joined:
            return Outcome(result, result.content)
        # Joined the same call in flight: not sent again (it was recorded once, when sent).
        content = _noted(result.content) if result.ok else result.content
        self._record(
            function, arguments, tool_call_id, result, started, Outcome(result, content, True)
        )
        return Outcome(result, content, deduplicated=result.ok)

    async def _send(
        self,
        key: tuple[str, str],
        function: Function,
        arguments: str | Mapping[str, Any] | None,
        tool_call_id: str | None,
    ) -> ToolResult:
        started = time.perf_counter()
        try:
            result = await self.executor.run(
                function, arguments, self.context, tool_call_id=tool_call_id
            )
        finally:
            self._inflight.pop(key, None)
        if result.ok and result.request is not None:
            self._done[key] = (result.content, result.status)
        # Recorded (and stored) here, not by the tool: an interruption may have cancelled it.
        self._record(function, arguments, tool_call_id, result, started)
        return result

    def _record(
        self,
        function: Function,
        arguments: str | Mapping[str, Any] | None,
        tool_call_id: str | None,
        result: ToolResult,
        started: float,
        deduplicated: Outcome | None = None,
    ) -> None:
        """Keep the execution; a result that was sent (not read again) stores its values."""
        stored: dict[str, Any] = {}
        if deduplicated is None:
            self.context, stored = store_result(self.context, function, result)
            if stored:
                self.stored.update(stored)
                self._refresh()
        now = time.perf_counter()
        timings = ExecutionTimings(
            None,
            None if deduplicated else result.timings.time_to_request_ms,
            None if deduplicated else result.timings.request_ms,
        )
        self.executions.append(
            ExecutionRecord(
                function.name,
                tool_call_id or "",
                parsed_arguments(arguments),
                result.ok,
                result.error,
                result.status,
                (now - started) * 1000,
                timings,
                deduplicated is not None,
                deduplicated.content if deduplicated is not None else result.content,
                now,
                "in_call",
                stored,
            )
        )

    def finished_call(
        self,
        transcript: list[dict[str, str]],
        *,
        ended_by: str | None = None,
        ended_at: float | None = None,
    ) -> FinishedCall:
        """The call as post-call work sees it, built as ``CallSession.finished_call`` builds
        it: ``transcript`` is the turns the framework holds (``[{role: caller | agent,
        text}]``); ``ended_by`` defaults to how the adapter saw it end, else ``caller``."""
        return finished_call(
            self.context,
            agent_name=self.agent.name if self.agent is not None else "agent",
            language=self.language or "en",
            started_at=self.started_at,
            ended_at=ended_at,
            ended_by=ended_by or self.ended_by or "caller",
            transfer_number=self.transfer_number,
            transcript=transcript,
            executions=[e.to_dict() for e in self.executions],
        )

    async def aclose(self) -> None:
        """Wait for the calls in flight: what was sent finishes."""
        pending = list(self._inflight.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _noted(content: str) -> str:
    return error_content({"note": ALREADY_DONE, "result": _json_or_text(content)})


def sip_uri(number: str) -> str:
    """A transfer destination as SIP trunks expect it: ``tel:+1555...`` unless already a URI."""
    number = number.strip()
    return number if number.startswith(("tel:", "sip:", "sips:")) else f"tel:{number}"
