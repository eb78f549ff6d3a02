"""The seam every action implements: ``async run(invocation) -> ToolResult``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..context import CallContext
from ..results import ToolResult
from ..spec import Function


@dataclass(slots=True)
class Invocation:
    """One run of a function: bound values in, a ToolResult (filled in by the action) out."""

    function: Function
    values: dict[str, Any]  # the arguments to render with, context-filled ones included
    variables: dict[str, Any]  # the call's context variables, for {variable} placeholders
    context: CallContext
    tool_call_id: str | None
    started: float  # time.perf_counter() when run() was called
    result: ToolResult


class Action(Protocol):
    async def run(self, invocation: Invocation) -> ToolResult: ...
