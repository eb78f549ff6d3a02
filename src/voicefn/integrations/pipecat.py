"""voicefn functions as Pipecat function calls (``pip install "voicefn[pipecat]"``).

    from voicefn.integrations.pipecat import register

    tools = register(llm, voicefn.load_agent("agent.yaml"), EXECUTOR, voicefn.CallContext(...), tts)
    context = LLMContext(messages=[...], tools=tools)
    aggregators = LLMContextAggregatorPair(context)
    pipeline = Pipeline([transport.input(), stt, aggregators.user(), llm, tts,
                         transport.output(), aggregators.assistant()])

:func:`register` registers each in-call function with ``llm.register_function`` and returns the
:class:`~pipecat.adapters.llm.schemas.tools_schema.ToolsSchema` for the LLM context (parameters the
call's context provides are left out: the LLM neither asks for them nor overrides them). A call
runs on the shared :class:`~voicefn.Executor` with the call's :class:`~voicefn.CallContext`.

- Timeouts: each function is registered with its own timeout (``timeout_ms``, plus a margin so
  that voicefn's timeout result, which the LLM can act on, arrives first).
- Interruptions: a side-effecting function (not a GET, unless ``allow_repeat``) is registered with
  ``cancel_on_interruption=False``: a barge-in does not cancel a booking on its way. A read is
  cancelled. A side-effecting call already sent is not sent again in the same call.
- Fillers are spoken through the TTS (``tts``, else pushed downstream from the LLM service) when
  the function calls start, as a ``TTSSpeakFrame`` that is not added to the context; one per
  batch of calls.
- Errors (a 503, a timeout, missing arguments) are results the LLM reads, ``{"error": ...,
  "detail": ...}``, not Pipecat's generic failure text.
- ``end_call`` says the goodbye line and pushes the frame that ends the pipeline
  (``EndWorkerFrame``: queued speech is played first); ``transfer_call`` and ``send_sms`` go
  through the ``telephony`` you configure (``TwilioTelephony``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from ..context import CallContext
from ..executor import Executor
from ..results import error_content
from ..runtime.agent import Agent
from ..spec import BuiltinAction, Function
from ._guard import extra
from ._tools import FunctionRunner, Telephony

with extra("pipecat"):
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.frames.frames import (
        EndWorkerFrame,
        FunctionCallFromLLM,
        FunctionCallResultProperties,
        TTSSpeakFrame,
    )
    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.services.llm_service import FunctionCallParams, LLMService

__all__ = ["register"]

log = logging.getLogger("voicefn.integrations.pipecat")

#: Seconds beyond a function's own timeout before Pipecat gives up on it: voicefn's timeout
#: result (which the LLM can act on) comes first.
TIMEOUT_MARGIN_S = 2.0


def register(
    llm: LLMService[Any],
    agent: Agent | Iterable[Function],
    executor: Executor,
    context: CallContext | None = None,
    tts: FrameProcessor | None = None,
    *,
    language: str | None = None,
    telephony: Telephony | None = None,
) -> ToolsSchema:
    """Register ``agent``'s in-call functions (or a list of in-call functions) with ``llm`` and
    return the tools schema for the ``LLMContext``.

    One registration per call (it remembers what the call sent); share ``executor`` between
    calls. ``tts`` is where fillers are queued (default: pushed downstream from ``llm``);
    ``telephony`` carries out ``transfer_call`` (with the context's ``call_sid``) and
    ``send_sms``.
    """
    runner = FunctionRunner(agent, executor, context, language=language)
    speaker = _Speaker(llm, tts)
    handlers: list[_Handler] = []
    for function in runner.functions.values():
        handler = _Handler(runner, function, speaker, telephony)
        llm.register_function(
            function.name,
            handler,
            cancel_on_interruption=function.repeatable,
            timeout_secs=_timeout_s(function),
        )
        handlers.append(handler)

    async def on_function_calls_started(
        service: LLMService[Any], function_calls: Sequence[FunctionCallFromLLM]
    ) -> None:
        for call in function_calls:
            line = runner.filler(call.function_name)
            if line:  # one filler for the batch: the first function that has one
                await speaker.say(line, append_to_context=False)
                return

    if any(runner.filler(name) for name in runner.functions):
        llm.add_event_handler("on_function_calls_started", on_function_calls_started)
    schemas = [
        FunctionSchema(
            name=schema["name"],
            description=schema["description"],
            properties=schema["parameters"].get("properties", {}),
            required=list(schema["parameters"].get("required", [])),
        )
        for schema in (runner.schema(name) for name in runner.functions)
    ]
    return ToolsSchema(standard_tools=list(schemas))


def _timeout_s(function: Function) -> float | None:
    if isinstance(function.action, BuiltinAction):
        return None  # instant in voicefn; what telephony takes is the provider's
    return function.action.timeout_ms / 1000 + TIMEOUT_MARGIN_S


class _Speaker:
    """Says a line through the TTS: queued into ``tts``, else pushed downstream from the LLM."""

    def __init__(self, llm: LLMService[Any], tts: FrameProcessor | None) -> None:
        self.llm = llm
        self.tts = tts

    async def say(self, text: str, *, append_to_context: bool) -> None:
        frame = TTSSpeakFrame(text, append_to_context=append_to_context)
        if self.tts is not None:
            await self.tts.queue_frame(frame)
        else:
            await self.llm.push_frame(frame)


class _Handler:
    """``handler(params)`` for one function, as ``llm.register_function`` wants it."""

    def __init__(
        self,
        runner: FunctionRunner,
        function: Function,
        speaker: _Speaker,
        telephony: Telephony | None,
    ) -> None:
        self.runner = runner
        self.function = function
        self.speaker = speaker
        self.telephony = telephony
        # Awaited by Pipecat when the LLM service is cleaned up: what was sent finishes.
        self._pipecat_cleanup = runner.aclose

    async def __call__(self, params: FunctionCallParams) -> None:
        outcome = await self.runner.run(self.function, params.arguments, params.tool_call_id)
        result = outcome.result
        content = outcome.content
        kind = result.directive.get("builtin") if result.ok and result.directive else None
        if outcome.deduplicated:
            kind = None
        ends = False
        if kind == "transfer_call":
            content, ends = await self._transfer(result.directive or {}, content)
        elif kind == "send_sms":
            content = await self._send_sms(result.directive or {}, content)
        elif kind == "end_call":
            ends = True
        # Once the call ends, the LLM is not asked for another answer.
        properties = FunctionCallResultProperties(run_llm=False) if ends else None
        await params.result_callback(_payload(content), properties=properties)
        if kind == "end_call":
            goodbye = (result.directive or {}).get("message")
            if goodbye:
                await self.speaker.say(str(goodbye), append_to_context=True)
        if ends:
            await params.llm.push_frame(EndWorkerFrame(reason=f"voicefn {kind}"))

    async def _transfer(self, directive: dict[str, Any], content: str) -> tuple[str, bool]:
        call_sid = directive.get("call_sid")
        if self.telephony is None or not call_sid:
            log.warning("transfer_call: no telephony (register(telephony=...)) or call_sid")
            return _error("transfer_unavailable", "This call cannot be transferred."), False
        try:
            await self.telephony.transfer(str(call_sid), str(directive["number"]))
        except Exception as exc:
            log.warning("transfer_call to %s failed: %s", directive.get("number"), exc)
            return _error("transfer_failed", "The transfer did not go through."), False
        return content, True

    async def _send_sms(self, directive: dict[str, Any], content: str) -> str:
        if self.telephony is None:
            log.warning("send_sms: no telephony configured (register(telephony=...))")
            return _error("sms_unavailable", "Text messages cannot be sent on this call.")
        try:
            await self.telephony.send_sms(
                str(directive["to"]), str(directive["body"]), from_=directive.get("from")
            )
        except Exception as exc:
            log.warning("send_sms failed: %s", exc)
            return _error("sms_failed", "The text message could not be sent.")
        return content


def _error(code: str, detail: str) -> str:
    return error_content({"error": code, "detail": detail})


def _payload(content: str) -> Any:
    """What goes to ``result_callback``: Pipecat writes ``json.dumps(result)`` into the context,
    so a JSON object or list is passed as one (the LLM reads the same JSON, not a quoted
    string); other text as it is."""
    if content[:1] in ("{", "["):
        try:
            value = json.loads(content)
        except (ValueError, RecursionError):
            return content
        if isinstance(value, dict | list):
            return value
    return content
