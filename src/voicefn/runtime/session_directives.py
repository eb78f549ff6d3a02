"""What a built-in function's successful result asks of the call (its ``directive``): the events
the host carries out (transfer, SMS, hang-up) and how the call ends, if it does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import CallEnded, Event, SmsRequested, TransferRequested


@dataclass(frozen=True)
class CallEnding:
    """The call ends: ``agent`` (end_call) or ``transfer`` (transfer_call, to ``number``)."""

    ended_by: str
    transfer_number: str | None = None


def directive_events(
    directive: dict[str, Any], function: str
) -> tuple[list[Event], CallEnding | None]:
    """The events of ``function``'s directive, in order, and the call's ending (None: the call
    goes on). A directive of no known kind asks nothing."""
    kind = directive.get("builtin")
    if kind == "transfer_call":
        transfer = TransferRequested(
            directive["number"], directive.get("reason"), directive.get("call_sid"), function
        )
        ending = CallEnding("transfer", directive["number"])
        return [transfer, CallEnded("transferred")], ending
    if kind == "send_sms":
        sms = SmsRequested(directive["to"], directive.get("from"), directive["body"], function)
        return [sms], None
    if kind == "end_call":
        return [CallEnded("agent_ended", directive.get("message"))], CallEnding("agent")
    return [], None
