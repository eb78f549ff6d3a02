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
- A function's ``store:`` values join the call's variables (later calls see them).
- When the pipeline ends (Pipecat cleans the LLM service up), the post-call work runs once with
  the LLM context's messages as the transcript: extraction, post-call functions, the agent
  webhook (signed with ``signing_secret``), or, with ``report_to``, the call goes to a running
  ``voicefn serve``. The returned tools are a :class:`VoicefnTools`: ``await tools.finish()``
  runs it (or waits for it) and returns the report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ..context import CallContext
from ..executor import Executor
from ..results import error_content
from ..runtime.agent import Agent
from ..runtime.llm_client import LLMClient
from ..runtime.platform_report import PlatformTarget
from ..runtime.postcall_inline import SigningSecret
from ..spec import BuiltinAction, Function
from ._guard import extra
from ._postcall import Finished, PostCall, transcript_of
from ._tools import FunctionRunner, Telephony

with extra("pipecat"):
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
    from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
    from pipecat.frames.frames import (
        EndWorkerFrame,
        Frame,
        FunctionCallFromLLM,
        FunctionCallResultProperties,
        LLMContextFrame,
        TTSSpeakFrame,
    )
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.frame_processor import FrameProcessor
    from pipecat.services.llm_service import FunctionCallParams, LLMService

__all__ = ["VoicefnTools", "register"]

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
    signing_secret: SigningSecret | None = None,
    report_to: PlatformTarget | None = None,
    postcall_llm: LLMClient | None = None,
    finish_on_end: bool = True,
) -> VoicefnTools:
    """Register ``agent``'s in-call functions (or a list of in-call functions) with ``llm`` and
    return the tools schema for the ``LLMContext`` (a :class:`VoicefnTools`).

    One registration per call (it remembers what the call sent); share ``executor`` between
    calls. ``tts`` is where fillers are queued (default: pushed downstream from ``llm``);
    ``telephony`` carries out ``transfer_call`` (with the context's ``call_sid``) and
    ``send_sms``.

    When the pipeline ends (``finish_on_end``), and on ``await tools.finish()``, the post-call
    work runs once: inline, the agent webhook signed with ``signing_secret`` (a ``whsec_...``
    secret; unsigned with a warning without one) and the extraction through ``postcall_llm``
    (default: the agent's ``llm:``), or reported to ``report_to`` (a running ``voicefn serve``).
    """
    runner = FunctionRunner(agent, executor, context, language=language)
    post = PostCall(runner, signing_secret=signing_secret, report_to=report_to, llm=postcall_llm)
    speaker = _Speaker(llm, tts)
    handlers: list[_Handler] = []
    schemas = [
        FunctionSchema(
            name=schema["name"],
            description=schema["description"],
            properties=schema["parameters"].get("properties", {}),
            required=list(schema["parameters"].get("required", [])),
        )
        for schema in (runner.schema(name) for name in runner.functions)
    ]
    tools = VoicefnTools(schemas, post)
    for function in runner.functions.values():
        handler = _Handler(runner, function, speaker, telephony, tools, finish_on_end)
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
    llm.add_event_handler("on_before_process_frame", tools._seen)
    return tools


class VoicefnTools(ToolsSchema):
    """The tools schema :func:`register` returns (pass it to ``LLMContext(tools=...)``), and
    the call's end: :meth:`finish`."""

    def __init__(self, standard_tools: list[FunctionSchema], post: PostCall) -> None:
        super().__init__(standard_tools=standard_tools)
        self._post = post
        #: the LLM context the call runs on (seen going into the LLM service): its messages
        #: are the transcript
        self.llm_context: LLMContext | None = None

    @property
    def context(self) -> CallContext:
        """The call's context, as functions see it (``store:`` values among its variables)."""
        return self._post.runner.context

    @property
    def stored(self) -> dict[str, Any]:
        """What the functions' ``store:`` put into the call's variables so far."""
        return dict(self._post.runner.stored)

    @property
    def post_call(self) -> Finished | None:
        """What the post-call work gave, once done: a ``PostCallReport`` (inline) or a
        ``PlatformReceipt`` (``report_to``)."""
        return self._post.result

    async def finish(self, *, ended_by: str | None = None) -> Finished:
        """Run the call's post-call work now (once: if it already started, wait for it) and
        return its report. ``ended_by``: ``caller``, ``agent``, ``transfer`` or ``system``
        (default: ``agent`` after end_call, ``transfer`` after transfer_call, else
        ``caller``)."""
        return await self._post.finish(self._transcript, ended_by)

    async def _pipeline_ended(self) -> None:
        """Pipecat's cleanup of the LLM service: the pipeline has ended."""
        await self._post.finish(self._transcript)

    def _seen(self, _: FrameProcessor, frame: Frame) -> None:
        if isinstance(frame, LLMContextFrame):
            self.llm_context = frame.context

    def _transcript(self) -> list[dict[str, str]]:
        if self.llm_context is None:
            return []
        return transcript_of(
            (m.get("role"), m.get("content"))
            for m in self.llm_context.get_messages()
            if isinstance(m, dict)
        )


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
        tools: VoicefnTools,
        finish_on_end: bool,
    ) -> None:
        self.runner = runner
        self.function = function
        self.speaker = speaker
        self.telephony = telephony
        self.tools = tools
        # Awaited by Pipecat when the LLM service is cleaned up (the pipeline ended): what was
        # sent finishes, then the post-call work runs (once: every handler carries this one).
        self._pipecat_cleanup: Callable[[], Awaitable[None]] = (
            tools._pipeline_ended if finish_on_end else runner.aclose
        )

    async def __call__(self, params: FunctionCallParams) -> None:
        if self.tools.llm_context is None and isinstance(params.context, LLMContext):
            self.tools.llm_context = params.context
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
            self.runner.ended_by = "agent"
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
        self.runner.ended_by = "transfer"
        self.runner.transfer_number = str(directive["number"])
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
