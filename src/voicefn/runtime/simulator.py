"""The text call simulator behind ``voicefn call``: the seeds' "test your function with sample calls".

It is a host like any other: it reads the caller's lines (typed or scripted), shows the agent's
words, fillers, each function call with its request, result and latency, and carries out builtin
events (printing them, or through a telephony provider when one is given).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rich.console import Console
from rich.markup import escape

from .events import (
    AgentMessage,
    AgentTextDelta,
    CallEnded,
    ErrorEvent,
    Event,
    Filler,
    FunctionFinished,
    FunctionStarted,
    PostCallFinished,
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
)

if TYPE_CHECKING:
    from .session import CallSession

_T = TypeVar("_T")
#: The ErrorEvent message of a failed LLM request (see :mod:`voicefn.runtime.session`).
LLM_FAILED = "the LLM request failed"


class Telephony(Protocol):
    async def transfer(self, call_sid: str, number: str, *, announce: str | None = None) -> str: ...
    async def send_sms(self, to: str, body: str, *, from_: str | None = None) -> str: ...


class Transcript:
    """Prints events for a person (or collects them silently for ``--json``)."""

    def __init__(self, console: Console | None, endpoint: str | None = None) -> None:
        self.console = console
        self.endpoint = endpoint
        self.lines: list[dict[str, Any]] = []
        self._streaming = False
        self._streamed = False

    def _print(self, text: str = "", **kw: Any) -> None:
        if self.console is not None:
            self.console.print(text, **kw)

    def caller(self, text: str) -> None:
        self.lines.append({"speaker": "caller", "text": text})

    def hangup(self) -> None:
        if self._streaming:  # end the line the agent was saying
            self._print()
            self._streaming = False
        self.lines.append({"event": "hangup"})
        self._print("[bold]call ended[/bold] (the caller hung up)")

    def event(self, ev: Event) -> None:
        if isinstance(ev, AgentTextDelta):
            self._streamed = True
            if not self._streaming:
                self._print("[bold cyan]agent:[/bold cyan] ", end="")
                self._streaming = True
            self._print(escape(ev.text), end="")
            return
        if self._streaming:
            self._print()
            self._streaming = False
        if isinstance(ev, AgentMessage):
            if ev.text:
                self.lines.append({"speaker": "agent", "text": ev.text})
                if not self._streamed:  # e.g. the welcome message: it was not streamed
                    self._print(f"[bold cyan]agent:[/bold cyan] {escape(ev.text)}")
            self._streamed = False
        elif isinstance(ev, Filler):
            self.lines.append({"speaker": "agent", "text": ev.text, "filler": True})
            self._print(f"[cyan]agent (filler):[/cyan] [italic]{escape(ev.text)}[/italic]")
        elif isinstance(ev, FunctionStarted):
            args = (
                ev.arguments
                if isinstance(ev.arguments, str)
                else json.dumps(ev.arguments, ensure_ascii=False)
            )
            self._print(f"  [magenta]→ {escape(ev.function)}[/magenta] {escape(args)}")
        elif isinstance(ev, FunctionFinished):
            r = ev.result
            if r.request is not None and not ev.deduplicated:
                self._print(f"    [dim]{r.request.method} {escape(r.request.url)}[/dim]")
            verdict = "[green]ok[/green]" if r.ok else f"[red]{r.error}[/red]"
            status = f" {r.status}" if r.status is not None else ""
            dedup = " [yellow](already done; not sent again)[/yellow]" if ev.deduplicated else ""
            self._print(
                f"  [magenta]← {escape(ev.function)}[/magenta] {verdict}{status} in {ev.latency_ms:.1f} ms{dedup}"
            )
            self._print(f"    [dim]{escape(r.content[:500])}[/dim]")
        elif isinstance(ev, TransferRequested):
            self.lines.append({"event": "transfer", "number": ev.number, "reason": ev.reason})
            self._print(
                f"[bold yellow]⇢ transfer to {escape(ev.number)}[/bold yellow]"
                + (f" ({escape(ev.reason)})" if ev.reason else "")
            )
        elif isinstance(ev, SmsRequested):
            self.lines.append({"event": "sms", "to": ev.to, "body": ev.body})
            self._print(f"[bold yellow]✉ SMS to {escape(ev.to)}:[/bold yellow] {escape(ev.body)}")
        elif isinstance(ev, CallEnded):
            if ev.message:
                self.lines.append({"speaker": "agent", "text": ev.message})
                self._print(f"[bold cyan]agent:[/bold cyan] {escape(ev.message)}")
            self.lines.append({"event": "call_ended", "reason": ev.reason})
            self._print(f"[bold]call ended[/bold] ({ev.reason})")
        elif isinstance(ev, ErrorEvent):
            line: dict[str, Any] = {"event": "error", "message": ev.message, "detail": ev.detail}
            where = ""
            if ev.message == LLM_FAILED and self.endpoint:
                line["endpoint"] = self.endpoint
                where = f" at {escape(self.endpoint)}"
            self.lines.append(line)
            self._print(
                f"[red]error: {escape(ev.message)}{where}[/red]"
                + (f" [dim]{escape(ev.detail)}[/dim]" if ev.detail else "")
            )
        elif isinstance(ev, TurnInterrupted):
            self._print("[yellow](interrupted)[/yellow]")
        elif isinstance(ev, PostCallFinished):
            self._post_call(ev)
        elif isinstance(ev, TurnFinished):
            pass

    def _post_call(self, ev: PostCallFinished) -> None:
        """What was extracted (each value, or why it is missing or invalid) and where the
        execution record went."""
        report = ev.report
        extraction = report.extraction
        if extraction is not None and extraction.fields:
            self._print("[bold]after the call[/bold] (post_call.*)")
            for name, f in extraction.fields.items():
                if f.status == "ok":
                    shown = json.dumps(f.value, ensure_ascii=False)
                    self._print(f"  [green]{escape(name)}[/green] = {escape(shown)}")
                else:
                    found = (
                        f" (found {json.dumps(f.found, ensure_ascii=False)})"
                        if f.status == "invalid"
                        else ""
                    )
                    why = f": {f.reason}" if f.reason else ""
                    self._print(
                        f"  [yellow]{escape(name)}[/yellow] {f.status}{escape(found + why)}"
                    )
        hook = report.webhook
        if hook is not None:
            verdict = (
                f"[green]{hook.status}[/green]"
                if hook.ok
                else f"[red]{escape(hook.error or '')}[/red]"
            )
            self._print(f"  [magenta]⇢ execution record[/magenta] {escape(hook.url)} {verdict}")


async def _carry_out(ev: Event, telephony: Telephony | None, transcript: Transcript) -> None:
    if telephony is None:
        return
    try:
        if isinstance(ev, TransferRequested) and ev.call_sid:
            await telephony.transfer(ev.call_sid, ev.number)
        elif isinstance(ev, SmsRequested):
            await telephony.send_sms(ev.to, ev.body, from_=ev.from_)
    except Exception as exc:  # the host failing must not kill the call
        transcript.event(ErrorEvent("telephony request failed", str(exc)))


async def _unless(hangup: asyncio.Event, work: Awaitable[_T]) -> tuple[bool, _T | None]:
    """``(False, result)`` when ``work`` finishes first; ``(True, None)`` when the caller hangs up
    first (``work`` is then cancelled)."""
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(hangup.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if task.done():
        return False, task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return True, None


async def run_call(
    session: CallSession,
    next_line: Callable[[], Awaitable[str | None]],
    *,
    console: Console | None = None,
    telephony: Telephony | None = None,
    hangup: asyncio.Event | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Drive a call until the caller stops, hangs up (``hangup`` is set: Ctrl-C) or the call
    ends; returns the JSON summary. ``endpoint`` is named in LLM errors."""
    transcript = Transcript(console, endpoint)
    hangup = hangup or asyncio.Event()

    async def play(events: AsyncIterator[Event]) -> None:
        async for ev in events:
            transcript.event(ev)
            await _carry_out(ev, telephony, transcript)

    hung_up, _ = await _unless(hangup, play(session.start()))
    turns = 0
    while not session.ended and not hung_up:
        hung_up, line = await _unless(hangup, next_line())
        if hung_up or line is None:
            break
        line = line.strip()
        if not line:
            continue
        turns += 1
        transcript.caller(line)
        turn = asyncio.ensure_future(play(session.turn(line)))
        hung_up, _ = await _unless(hangup, asyncio.shield(turn))
        if hung_up:
            session.interrupt()  # what was said and sent stays in the history
            with contextlib.suppress(asyncio.CancelledError):
                await turn
    if hung_up:
        transcript.hangup()
    await play(session.finish())
    report = session.post_call
    return {
        "agent": session.agent.name,
        "turns": turns,
        "ended": session.ended or hung_up,
        "hung_up": hung_up,
        # ErrorEvents (a failed LLM request, a turn that failed, a telephony error): the call
        # went on, but `voicefn call` exits non-zero.
        "errors": sum(1 for line in transcript.lines if line.get("event") == "error"),
        "transcript": transcript.lines,
        "executions": [asdict(e) for e in session.executions],
        # extraction, post-call functions, the execution record and its delivery
        "post_call": report.to_dict() if report is not None else None,
    }


def script_reader(lines: list[str]) -> Callable[[], Awaitable[str | None]]:
    it = iter(lines)

    async def next_line() -> str | None:
        return next(it, None)

    return next_line


def stdin_reader(console: Console) -> Callable[[], Awaitable[str | None]]:
    """Lines typed by the caller; ``/quit`` or ``/exit`` (or end of input) hangs up.

    Each line is read on a daemon thread, so a hang-up (Ctrl-C) never waits for Enter. A real
    stdin is read with ``os.read`` on its descriptor: a thread left blocked in Python's buffered
    ``input()`` would hold the stdin lock when the interpreter exits (a fatal error)."""
    try:
        fd: int | None = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None  # a replaced stdin (tests): read it with input()
    pending = bytearray()

    def read_line() -> str | None:
        if fd is None:
            try:
                return console.input("[bold green]you>[/bold green] ")
            except (EOFError, OSError, ValueError):
                return None
        console.print("[bold green]you>[/bold green] ", end="")
        while b"\n" not in pending:
            chunk = os.read(fd, 4096)
            if not chunk:
                if not pending:
                    return None
                break
            pending.extend(chunk)
        line, _, rest = bytes(pending).partition(b"\n")
        pending[:] = rest
        return line.decode("utf-8", errors="replace")

    async def next_line() -> str | None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[str | None] = loop.create_future()

        def deliver(value: str | None) -> None:
            if not got.done():
                got.set_result(value)

        def read() -> None:
            if hasattr(signal, "pthread_sigmask"):  # Ctrl-C goes to the loop, never to read()
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                value = read_line()
            except OSError:
                value = None
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(deliver, value)

        threading.Thread(target=read, name="voicefn-stdin", daemon=True).start()
        line = await got
        return None if line is None or line.strip() in ("/quit", "/exit") else line

    return next_line
