"""voicefn functions as LiveKit Agents tools (``pip install "voicefn[livekit]"``).

    from voicefn.integrations.livekit import VoicefnToolset

    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        await ctx.wait_for_participant()                  # the caller (SIP or web)
        tools = VoicefnToolset(voicefn.load_agent("agent.yaml"), executor=EXECUTOR)
        session = AgentSession(llm=..., stt=..., tts=..., vad=...)
        await session.start(Agent(instructions=tools.instructions, tools=[tools]), room=ctx.room)

Each in-call function becomes a LiveKit tool (``function_tool(handler, raw_schema=...)``) whose
parameters are those the LLM must fill: the ones the call's context provides are removed. A call
runs on the shared :class:`~voicefn.Executor` with the call's :class:`~voicefn.CallContext`: the
call id, the caller's and the dialled number and variables come from the LiveKit job, its room and
the SIP participant (:func:`call_context`), under the ``context`` you pass.

- What the LLM reads is the function's JSON text; a failure (a 503, a timeout, missing arguments)
  is a :class:`~livekit.agents.llm.ToolError` with the short message the LLM should act on.
- The function's filler is said with ``RunContext.with_filler`` while it runs (not added to the
  chat history), once per LLM response and not when the agent already spoke in it.
- ``end_call`` says the goodbye line and ends the session (and hangs up: the room is deleted);
  ``transfer_call`` transfers the SIP participant to the configured number with LiveKit's SIP API;
  ``send_sms`` sends through the ``telephony`` you configure (e.g. ``TwilioTelephony``).
- A side-effecting function already sent is not sent again: after a barge-in LiveKit keeps the
  tool running and records its result once; the same call made again reads that result.
- A function's ``store:`` values join the call's variables (later calls see them).
- When the session closes (or the job shuts down), the post-call work runs once with the
  session's history as the transcript: extraction, post-call functions, the agent webhook (signed
  with ``signing_secret``), or, with ``report_to``, the call goes to a running ``voicefn serve``.
  ``await tools.finish()`` runs it (or waits for it) and returns the report.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ..context import CallContext
from ..executor import Executor
from ..runtime.agent import Agent
from ..runtime.llm_client import LLMClient
from ..runtime.platform_report import PlatformTarget
from ..runtime.postcall_inline import SigningSecret
from ..spec import Function
from ._guard import extra
from ._postcall import Finished, PostCall, transcript_of
from ._tools import FunctionRunner, Outcome, SmsSender, merge_context, short_error, sip_uri

with extra("livekit"):
    from livekit import api, rtc
    from livekit.agents import llm as lk_llm
    from livekit.agents.job import JobContext, get_job_context
    from livekit.agents.llm import RawFunctionTool, ToolError, Toolset, function_tool
    from livekit.agents.voice import AgentSession, CloseEvent, RunContext, SpeechHandle
    from livekit.agents.voice.events import CloseReason

#: A tool made from one function (LiveKit's raw-schema tool type).
_Tool = RawFunctionTool[..., Awaitable[Any]]
_Ctx = RunContext[Any]

__all__ = ["VoicefnToolset", "call_context", "sip_call_context"]

log = logging.getLogger("voicefn.integrations.livekit")

_SIP_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_SIP


def sip_call_context(
    attributes: Mapping[str, str],
    *,
    room_name: str | None = None,
    variables: Mapping[str, Any] | None = None,
) -> CallContext:
    """The call as a SIP participant's attributes describe it.

    ``call_sid`` is ``sip.callID`` (else the room's name). On an inbound call (the participant
    came in through a dispatch rule: ``sip.ruleID``) ``from_number`` is the caller
    (``sip.phoneNumber``) and ``to_number`` the number dialled (``sip.trunkPhoneNumber``); on an
    outbound call they are the other way round. Attributes outside ``sip.*`` and ``lk.*`` (set by
    a dispatch rule or ``CreateSIPParticipant``) become variables, over ``variables``.
    """
    phone = attributes.get("sip.phoneNumber") or None
    trunk = attributes.get("sip.trunkPhoneNumber") or None
    is_sip = any(key.startswith("sip.") for key in attributes)
    outbound = is_sip and not attributes.get("sip.ruleID")
    own = {
        key: value
        for key, value in attributes.items()
        if not key.startswith(("sip.", "lk.")) and value != ""
    }
    return CallContext(
        call_sid=attributes.get("sip.callID") or room_name or None,
        from_number=trunk if outbound else phone,
        to_number=phone if outbound else trunk,
        variables={**(variables or {}), **own},
    )


def call_context(
    job: JobContext | None = None, participant: rtc.RemoteParticipant | None = None
) -> CallContext:
    """What LiveKit knows about the current call (empty outside a job).

    Variables come from the room's metadata, then the job's (dispatch) metadata, when either is
    a JSON object, then the participant's own attributes; the call id and the numbers from the
    SIP participant (the one given, else the first SIP participant in the room; see
    :func:`sip_call_context`).
    """
    job = job if job is not None else get_job_context(required=False)
    if job is None:
        return CallContext()
    room = job.room
    room_name = room.name or job.job.room.name or None
    variables: dict[str, Any] = {}
    for metadata in (room.metadata, job.job.metadata):
        variables.update(_json_object(metadata))
    if participant is None:
        participant = _sip_participant(room)
    attributes: Mapping[str, str] = participant.attributes if participant is not None else {}
    return sip_call_context(attributes, room_name=room_name, variables=variables)


def _json_object(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _sip_participant(room: rtc.Room) -> rtc.RemoteParticipant | None:
    return next((p for p in room.remote_participants.values() if p.kind == _SIP_KIND), None)


class VoicefnToolset(Toolset):
    """An agent's in-call functions (or a list of functions) as LiveKit tools.

    Pass it in ``Agent(tools=[...])`` (or ``AgentSession(tools=[...])``). One toolset per call:
    it remembers what the call sent; share the ``executor`` between calls.

    ``context`` is laid over what the LiveKit job tells (:func:`call_context`, read when the
    toolset is made and again when the agent starts). ``telephony`` sends ``send_sms`` messages.
    ``livekit_api`` carries out ``transfer_call`` (default: the job's API client), on
    ``participant_identity`` in ``room_name`` (default: the room's SIP participant and the
    job's room). ``hang_up`` deletes the room when ``end_call`` ends the session, which hangs up
    a SIP caller.

    After the call (the session closes, the job shuts down, or ``await tools.finish()``), the
    post-call work runs once: inline, the agent webhook signed with ``signing_secret`` (a
    ``whsec_...`` secret; unsigned with a warning without one) and the extraction through
    ``postcall_llm`` (default: the agent's ``llm:``), or reported to ``report_to`` (a running
    ``voicefn serve``). ``finish_on_close=False`` leaves it to ``finish()``. The session is found
    from the job, the first tool call, or :meth:`watch`.
    """

    def __init__(
        self,
        functions: Agent | Iterable[Function],
        *,
        executor: Executor,
        context: CallContext | None = None,
        language: str | None = None,
        telephony: SmsSender | None = None,
        livekit_api: api.LiveKitAPI | None = None,
        participant_identity: str | None = None,
        room_name: str | None = None,
        hang_up: bool = True,
        signing_secret: SigningSecret | None = None,
        report_to: PlatformTarget | None = None,
        postcall_llm: LLMClient | None = None,
        finish_on_close: bool = True,
        id: str = "voicefn",
    ) -> None:
        self._explicit = context
        self._runner = FunctionRunner(functions, executor, self._resolve(), language=language)
        self._post = PostCall(
            self._runner, signing_secret=signing_secret, report_to=report_to, llm=postcall_llm
        )
        self._finish_on_close = finish_on_close
        self._session: AgentSession[Any] | None = None
        self._set_up = False
        self._telephony = telephony
        self._api = livekit_api
        self._participant_identity = participant_identity
        self._room_name = room_name
        self._hang_up = hang_up
        # speech id -> the step of that speech whose filler was said (one per LLM response)
        self._filler_steps: dict[str, int] = {}
        self._ending = False  # end_call or transfer_call: the session ends after this speech
        self._ended = False
        super().__init__(id=id, tools=self._build_tools())

    # ----------------------------------------------------------------------------- public API

    @property
    def context(self) -> CallContext:
        """The call's context, as functions see it."""
        return self._runner.context

    @property
    def instructions(self) -> str:
        """The agent's system prompt with the call's variables filled (empty for a list)."""
        agent = self._runner.agent
        return (self._runner.render(agent.system_prompt) or "") if agent is not None else ""

    @property
    def welcome_message(self) -> str | None:
        """The agent's welcome message, variables filled: ``session.say(tools.welcome_message)``."""
        agent = self._runner.agent
        return self._runner.render(agent.welcome_message) if agent is not None else None

    @property
    def ended(self) -> bool:
        """``end_call`` or ``transfer_call`` ended the session (or is ending it)."""
        return self._ending

    @property
    def stored(self) -> dict[str, Any]:
        """What the functions' ``store:`` put into the call's variables so far."""
        return dict(self._runner.stored)

    @property
    def post_call(self) -> Finished | None:
        """What the post-call work gave, once done: a ``PostCallReport`` (inline) or a
        ``PlatformReceipt`` (``report_to``)."""
        return self._post.result

    def watch(self, session: AgentSession[Any]) -> VoicefnToolset:
        """Run the post-call work when ``session`` closes, its history as the transcript (done
        by itself inside a LiveKit job, and on the first tool call)."""
        if self._session is not session:
            if self._session is not None:
                self._session.off("close", self._on_close)
            self._session = session
            session.on("close", self._on_close)
        return self

    async def finish(self, *, ended_by: str | None = None) -> Finished:
        """Run the call's post-call work now (once: if it already started, wait for it) and
        return its report. ``ended_by``: ``caller``, ``agent``, ``transfer`` or ``system``
        (default: ``agent`` after end_call, ``transfer`` after transfer_call, else
        ``caller``)."""
        return await self._post.finish(self._transcript, ended_by)

    def function_tools(self) -> list[_Tool]:
        """The tools as they are now (one per in-call function)."""
        return [t for t in self.tools if isinstance(t, RawFunctionTool)]

    async def setup(self) -> VoicefnToolset:
        """Called by LiveKit when the agent starts: read the job again (the SIP participant may
        have joined since) and rebuild the schemas for that context."""
        job = get_job_context(required=False)
        if job is not None:
            self._runner.set_context(self._resolve())
            self._tools = self._build_tools()
        if not self._set_up:  # the first agent of the call starts: the call starts
            self._set_up = True
            self._runner.started_at = time.time()
            if job is not None:
                job.add_shutdown_callback(self._on_shutdown)
                with contextlib.suppress(RuntimeError):  # no session started in this job yet
                    self.watch(job.primary_session)
        await super().setup()
        return self

    async def aclose(self) -> None:
        """Let functions that were sent finish."""
        await self._runner.aclose()
        await super().aclose()

    # ----------------------------------------------------------------------------- internals

    def _transcript(self) -> list[dict[str, str]]:
        session = self._session
        if session is None:
            return []
        return transcript_of(
            (item.role, item.text_content)
            for item in session.history.items
            if isinstance(item, lk_llm.ChatMessage)
        )

    def _on_close(self, event: CloseEvent) -> None:
        if self._finish_on_close:
            self._post.start(self._transcript, self._ended_by(event.reason))

    async def _on_shutdown(self, reason: str) -> None:
        # The job waits for this: the post-call work is done before the process moves on.
        if self._finish_on_close:
            await self._post.finish(self._transcript, self._ended_by(CloseReason.JOB_SHUTDOWN))

    def _ended_by(self, reason: CloseReason) -> str | None:
        if self._runner.ended_by is not None:
            return None  # end_call or transfer_call: the runner knows
        return "caller" if reason == CloseReason.PARTICIPANT_DISCONNECTED else "system"

    def _resolve(self) -> CallContext:
        discovered = call_context() if get_job_context(required=False) is not None else None
        return merge_context(discovered, self._explicit)

    def _build_tools(self) -> list[_Tool | Toolset]:
        return [self._tool(f) for f in self._runner.functions.values()]

    def _tool(self, function: Function) -> _Tool:
        async def call(raw_arguments: dict[str, object], context: _Ctx) -> Any:
            return await self._call(function, raw_arguments, context)

        return function_tool(call, raw_schema=self._runner.schema(function.name))

    async def _call(self, function: Function, arguments: Mapping[str, Any], ctx: _Ctx) -> Any:
        if self._session is None:
            self.watch(ctx.session)
        call_id = ctx.function_call.call_id
        line = self._runner.filler(function.name)
        if line:
            async with ctx.with_filler(self._filler(line, ctx)):
                outcome = await self._runner.run(function, arguments, call_id)
        else:
            outcome = await self._runner.run(function, arguments, call_id)
        result = outcome.result
        if not result.ok:
            raise ToolError(short_error(result))
        if result.directive and not outcome.deduplicated:
            return await self._carry_out(result.directive, outcome, ctx)
        return outcome.content

    def _filler(self, line: str, ctx: _Ctx) -> Callable[[int], SpeechHandle | None]:
        handle = ctx.speech_handle
        step = handle.num_steps

        def say(_: int) -> SpeechHandle | None:
            # Fired once the agent is idle: not if it spoke in this response, nor twice in one.
            if self._filler_steps.get(handle.id) == step or _spoke_in_step(handle):
                return None
            if handle.id not in self._filler_steps:
                handle.add_done_callback(self._forget_filler)
            self._filler_steps[handle.id] = step
            return ctx.session.say(line, add_to_chat_ctx=False)

        return say

    def _forget_filler(self, handle: SpeechHandle) -> None:
        self._filler_steps.pop(handle.id, None)

    async def _carry_out(self, directive: dict[str, Any], outcome: Outcome, ctx: _Ctx) -> Any:
        kind = directive.get("builtin")
        if kind == "end_call":
            self._runner.ended_by = "agent"
            goodbye = directive.get("message") or None
            self._end_after(ctx, goodbye)
            # With a goodbye line we say it ourselves; without one, the LLM says goodbye in the
            # same speech, and the session ends after it.
            return lk_llm.ToolResult(outcome.content, reply_required=goodbye is None)
        if kind == "transfer_call":
            await self._transfer(str(directive["number"]), ctx)
            self._runner.ended_by = "transfer"
            self._runner.transfer_number = str(directive["number"])
            self._end_after(ctx, None)
            return lk_llm.ToolResult(outcome.content, reply_required=False)
        if kind == "send_sms":
            await self._send_sms(directive)
            return outcome.content
        return outcome.content

    def _end_after(self, ctx: _Ctx, goodbye: str | None) -> None:
        session = ctx.session
        self._ending = True

        def finish(_: SpeechHandle) -> None:
            if goodbye:
                bye = session.say(goodbye, allow_interruptions=False)
                bye.add_done_callback(lambda _: self._end(session))
            else:
                self._end(session)

        ctx.speech_handle.add_done_callback(finish)

    def _end(self, session: AgentSession[Any]) -> None:
        if self._ended:
            return
        self._ended = True
        job = get_job_context(required=False)
        if job is not None and self._hang_up:

            def hang_up(_: object) -> None:
                job.delete_room()  # disconnects everyone, a SIP caller included
                job.shutdown(reason="voicefn end_call")

            session.once("close", hang_up)
        session.shutdown()

    async def _transfer(self, number: str, ctx: _Ctx) -> None:
        job = get_job_context(required=False)
        client = self._api or (job.api if job is not None else None)
        identity = self._participant_identity
        if identity is None and job is not None:
            participant = _sip_participant(job.room)
            identity = participant.identity if participant is not None else None
        room = self._room_name or (job.room.name or job.job.room.name if job else None)
        if client is None or not identity or not room:
            log.warning("transfer_call: no SIP participant or LiveKit API to transfer with")
            raise ToolError("This call cannot be transferred: tell the caller and offer help.")
        await ctx.wait_for_playout()  # let the agent finish what it is saying first
        request = api.TransferSIPParticipantRequest(
            room_name=room,
            participant_identity=identity,
            transfer_to=sip_uri(number),
            play_dialtone=False,
        )
        try:
            response = await client.sip.transfer_sip_participant(request)
        except Exception as exc:
            log.warning("transfer_call to %s failed: %s", number, exc)
            raise ToolError(
                "The transfer did not go through: tell the caller and offer help."
            ) from exc
        if response.status == api.SIPTransferStatus.STS_TRANSFER_FAILED:
            log.warning("transfer_call to %s failed: %s", number, response)
            raise ToolError("The transfer did not go through: tell the caller and offer help.")

    async def _send_sms(self, directive: dict[str, Any]) -> None:
        if self._telephony is None:
            log.warning("send_sms: no telephony configured (VoicefnToolset(telephony=...))")
            raise ToolError("Text messages cannot be sent on this call.")
        try:
            await self._telephony.send_sms(
                str(directive["to"]), str(directive["body"]), from_=directive.get("from")
            )
        except Exception as exc:
            log.warning("send_sms failed: %s", exc)
            raise ToolError("The text message could not be sent.") from exc


def _spoke_in_step(handle: SpeechHandle) -> bool:
    """Did the agent say something in the LLM response that called this tool? (The items of
    this step come after the last function output of the speech.)"""
    for item in reversed(handle.chat_items):
        if isinstance(item, lk_llm.FunctionCallOutput):
            return False
        if isinstance(item, lk_llm.ChatMessage) and item.role == "assistant":
            return True
    return False
