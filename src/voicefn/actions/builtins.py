"""Builtin functions: end_call, transfer_call, send_sms (seed 004).

Running one does not touch the telephony network: it validates and renders a *directive* that the
call runtime turns into an event for the host (the simulator, a LiveKit or Pipecat adapter, or a
telephony provider such as :mod:`voicefn.telephony.twilio`) to carry out.
"""

from __future__ import annotations

from typing import Any

from ..results import ToolResult, error_content
from ..spec import BuiltinAction
from ..templates import OMIT, Template, TemplateError, render_text
from .base import Invocation


class BuiltinRunner:
    """``async run(invocation) -> ToolResult`` for functions whose action is ``builtin``."""

    async def run(self, inv: Invocation) -> ToolResult:
        action = inv.function.action
        assert isinstance(action, BuiltinAction)
        result = inv.result
        try:
            directive, said = self._directive(action, inv)
        except (ValueError, TemplateError) as exc:
            result.error = "invalid_arguments"
            result.data = {"error": "invalid_arguments", "detail": str(exc)}
            result.content = error_content(result.data)
            return result
        result.ok = True
        result.directive = directive
        result.data = said
        result.content = error_content(said)
        return result

    def _directive(
        self, a: BuiltinAction, inv: Invocation
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        ctx, values = inv.context, inv.values
        if a.builtin == "end_call":
            goodbye = render_text(a.message, inv.variables) if a.message else None
            return {"builtin": "end_call", "message": goodbye}, {"ok": True, "call": "ending"}
        if a.builtin == "transfer_call":
            number = a.transfer_number
            if number is None:
                asked = values.get("number")
                if asked not in a.allowed_numbers:
                    raise ValueError(
                        f"Cannot transfer to {asked!r}. Choose one of: {', '.join(a.allowed_numbers)}."
                    )
                number = str(asked)
            reason = values.get("reason")
            return (
                {
                    "builtin": "transfer_call",
                    "number": number,
                    "reason": reason,
                    "call_sid": ctx.call_sid,
                },
                {"ok": True, "call": "transferring"},
            )
        if a.builtin == "send_sms":
            if not ctx.from_number:
                raise ValueError("The caller's number is unknown, so no SMS can be sent.")
            body = Template(a.message or "").render(values, inv.variables)
            if body is OMIT or not str(body).strip():
                raise ValueError("The message needs values that were not given.")
            sender = a.sms_from or ctx.to_number
            return (
                {"builtin": "send_sms", "to": ctx.from_number, "from": sender, "body": str(body)},
                {"ok": True, "sms": "sending"},
            )
        raise ValueError(f"unknown builtin {a.builtin!r}")
