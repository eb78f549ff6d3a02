"""The text call simulator behind ``voicefn call``: the seeds' "test your function with sample calls".

It is a host like any other: it reads the caller's lines (typed or scripted), shows the agent's
words, fillers, each function call with its request, result and latency, and carries out builtin
events (printing them, or through a telephony provider when one is given).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from typing import Any, Protocol

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
    SmsRequested,
    TransferRequested,
    TurnFinished,
    TurnInterrupted,
)
from .session import CallSession


class Telephony(Protocol):
    async def transfer(self, call_sid: str, number: str, *, announce: str | None = None) -> str: ...
    async def send_sms(self, to: str, body: str, *, from_: str | None = None) -> str: ...


class Transcript:
    """Prints events for a person (or collects them silently for ``--json``)."""

    def __init__(self, console: Console | None) -> None:
        self.console = console
        self.lines: list[dict[str, Any]] = []
        self._streaming = False
        self._streamed = False

    def _print(self, text: str = "", **kw: Any) -> None:
        if self.console is not None:
            self.console.print(text, **kw)

    def caller(self, text: str) -> None:
        self.lines.append({"speaker": "caller", "text": text})

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
            self.lines.append({"event": "error", "message": ev.message, "detail": ev.detail})
            self._print(
                f"[red]error: {escape(ev.message)}[/red]"
                + (f" [dim]{escape(ev.detail)}[/dim]" if ev.detail else "")
            )
        elif isinstance(ev, TurnInterrupted):
            self._print("[yellow](interrupted)[/yellow]")
        elif isinstance(ev, TurnFinished):
            pass


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


async def run_call(
    session: CallSession,
    next_line: Callable[[], Awaitable[str | None]],
    *,
    console: Console | None = None,
    telephony: Telephony | None = None,
) -> dict[str, Any]:
    """Drive a call until the caller stops or the call ends; returns the JSON summary."""
    transcript = Transcript(console)

    async def play(events: AsyncIterator[Event]) -> None:
        async for ev in events:
            transcript.event(ev)
            await _carry_out(ev, telephony, transcript)

    await play(session.start())
    turns = 0
    while not session.ended:
        line = await next_line()
        if line is None:
            break
        line = line.strip()
        if not line:
            continue
        turns += 1
        transcript.caller(line)
        await play(session.turn(line))
    await play(session.finish())
    return {
        "agent": session.agent.name,
        "turns": turns,
        "ended": session.ended,
        # ErrorEvents (a failed LLM request, a turn that failed, a telephony error): the call
        # went on, but `voicefn call` exits non-zero.
        "errors": sum(1 for line in transcript.lines if line.get("event") == "error"),
        "transcript": transcript.lines,
        "executions": [asdict(e) for e in session.executions],
    }


def script_reader(lines: list[str]) -> Callable[[], Awaitable[str | None]]:
    it = iter(lines)

    async def next_line() -> str | None:
        return next(it, None)

    return next_line


def stdin_reader(console: Console) -> Callable[[], Awaitable[str | None]]:
    async def next_line() -> str | None:
        try:
            line = await asyncio.to_thread(console.input, "[bold green]you>[/bold green] ")
        except EOFError:
            return None
        return None if line.strip() in ("/quit", "/exit") else line

    return next_line
