"""What a call keeps of each function execution (:class:`ExecutionRecord`), and the small
helpers its turn loop shares for results: canonical arguments, parsed ones, an internal error."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from ..results import ToolResult, error_content
from .events import ExecutionTimings


@dataclass
class ExecutionRecord:
    """What the call summary keeps of each function execution."""

    function: str
    tool_call_id: str
    arguments: dict[str, Any] | str
    ok: bool
    error: str | None
    status: int | None
    latency_ms: float
    timings: ExecutionTimings
    deduplicated: bool = False
    content: str = ""
    finished_at: float = 0.0  # perf_counter, to measure the time to the answer's first token
    phase: str = "in_call"
    #: the variables this execution stored (its function's ``store:``)
    stored: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The execution as :class:`~voicefn.runtime.postcall.FinishedCall` keeps it."""
        t = self.timings
        return {
            "function": self.function,
            "phase": self.phase,
            "tool_call_id": self.tool_call_id,
            "arguments": self.arguments,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "latency_ms": round(self.latency_ms, 3),
            "timings": {
                "time_to_filler_ms": t.time_to_filler_ms,
                "time_to_request_ms": t.time_to_request_ms,
                "request_ms": t.request_ms,
                "time_to_first_token_ms": t.time_to_first_token_ms,
            },
            "deduplicated": self.deduplicated,
            "stored": dict(self.stored),
            "content": self.content,
        }


def canonical(arguments: dict[str, Any] | str) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"))


def parsed(raw: str) -> dict[str, Any] | str:
    try:
        value = json.loads(raw or "{}")
    except (ValueError, RecursionError):
        return raw
    return value if isinstance(value, dict) else raw


def internal_error(function: str, exc: BaseException) -> ToolResult:
    payload = {
        "error": "function_failed",
        "reason": "internal",
        "detail": "The function could not run because of an internal error.",
    }
    return ToolResult(function, False, error_content(payload), payload, error="function_failed")


def json_or_text(content: str) -> Any:
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content


def completed(result: ToolResult) -> asyncio.Task[ToolResult]:
    async def done() -> ToolResult:
        return result

    return asyncio.get_running_loop().create_task(done())


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
