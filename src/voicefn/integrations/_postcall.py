"""The end of a framework call: its post-call work, once.

When LiveKit's session closes or Pipecat's pipeline ends, the adapter hands the transcript the
framework holds to :meth:`PostCall.finish`. The work runs once per call, in a task of its own (a
cancelled caller does not cancel it): either inline, as ``CallSession.finish()`` runs it
(extraction, post-call functions, the agent webhook, signed with ``signing_secret``), or, with
``report_to``, the finished call goes to a running ``voicefn serve`` whose durable queue does the
work. Whoever asks again (the automatic hook, then ``await toolset.finish()``) gets the same
result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from ..runtime.agent import Agent
from ..runtime.llm_client import LLMClient, shared_client
from ..runtime.platform_report import PlatformReceipt, PlatformTarget, report_call
from ..runtime.postcall import PostCallReport
from ..runtime.postcall_inline import SigningSecret, check_signing_secret, post_call
from ._tools import FunctionRunner

log = logging.getLogger("voicefn.integrations")

#: What finishing a call gives: the inline work's report, or the platform's receipt.
Finished = PostCallReport | PlatformReceipt


class PostCall:
    """The post-call work of the call ``runner`` runs; started once by :meth:`finish`."""

    def __init__(
        self,
        runner: FunctionRunner,
        *,
        signing_secret: SigningSecret | None = None,
        report_to: PlatformTarget | None = None,
        llm: LLMClient | None = None,
    ) -> None:
        check_signing_secret(signing_secret)
        if report_to is not None and not isinstance(report_to, PlatformTarget):
            raise TypeError(
                "report_to: expected voicefn.runtime.platform_report.PlatformTarget(url, "
                f"api_key, agent_id), got {type(report_to).__name__}"
            )
        self.runner = runner
        self.signing_secret = signing_secret
        self.report_to = report_to
        self._llm = llm
        self._task: asyncio.Task[Finished] | None = None

    @property
    def started(self) -> bool:
        return self._task is not None

    @property
    def result(self) -> Finished | None:
        """What finishing gave, once it is done."""
        task = self._task
        if task is None or not task.done() or task.cancelled() or task.exception():
            return None
        return task.result()

    def start(
        self, transcript: Callable[[], list[dict[str, str]]], ended_by: str | None = None
    ) -> asyncio.Task[Finished]:
        """Start the work (the first time; later calls return the same task). ``transcript``
        is read once the tool calls in flight have finished."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(transcript, ended_by))
            self._task.add_done_callback(_log_failure)
        return self._task

    async def finish(
        self, transcript: Callable[[], list[dict[str, str]]], ended_by: str | None = None
    ) -> Finished:
        """:meth:`start`, then wait for it (shielded: cancelling the wait does not cancel it)."""
        return await asyncio.shield(self.start(transcript, ended_by))

    async def _run(
        self, transcript: Callable[[], list[dict[str, str]]], ended_by: str | None
    ) -> Finished:
        ended_at = time.time()
        await self.runner.aclose()  # what was sent finishes: its result and store: count
        call = self.runner.finished_call(transcript(), ended_by=ended_by, ended_at=ended_at)
        if self.report_to is not None:
            return await report_call(self.report_to, call)
        runner = self.runner
        agent = runner.agent or Agent(name=call.agent_id, functions=[])
        llm = self._llm or shared_client(agent.llm)
        return await post_call(
            agent, call, runner.executor, llm, signing_secret=self.signing_secret
        )


def _log_failure(task: asyncio.Task[Finished]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("the post-call work failed", exc_info=task.exception())


def transcript_of(turns: Iterable[tuple[str, Any]]) -> list[dict[str, str]]:
    """``[{role: caller | agent, text}]`` from a framework's ``(role, content)`` messages:
    ``user`` and ``assistant`` messages with text (content given as a string or as a list of
    ``{"type": "text", "text": ...}`` parts, or a list of strings); the rest is left out."""
    out: list[dict[str, str]] = []
    for role, content in turns:
        if role not in ("user", "assistant"):
            continue
        text = _text(content).strip()
        if text:
            out.append({"role": "caller" if role == "user" else "agent", "text": text})
    return out


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list | tuple):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text") or ""))
        return "\n".join(p for p in parts if p)
    return ""
