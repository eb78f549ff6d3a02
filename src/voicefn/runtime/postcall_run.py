"""Running one post-call function with its mapped values, its entry in the execution record, and
what the inline post-call work did (:class:`PostCallReport`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..results import ToolResult, error_content
from ..spec import Function
from .postcall_call import FinishedCall
from .postcall_delivery import Delivery
from .postcall_extract import Extraction
from .postcall_mapping import Resolved, resolve

if TYPE_CHECKING:
    from ..executor import Executor

log = logging.getLogger("voicefn.postcall")


async def run_post_call_function(
    executor: Executor,
    function: Function,
    call: FinishedCall,
    extraction: Extraction,
    resolved: Resolved | None = None,
) -> ToolResult:
    """Run one post-call function with its mapped values; never raises. A required parameter
    whose source has no value is not guessed: nothing is sent and the result says which."""
    resolved = resolved or resolve(function, call, extraction)
    if resolved.missing:
        detail = "; ".join(f"{p} <- {s}: {why}" for p, s, why in resolved.missing)
        payload = {
            "error": "missing_values",
            "detail": f"Not run: required parameters have no value ({detail}).",
            "missing": [p for p, _, _ in resolved.missing],
        }
        return ToolResult(
            function.name, False, error_content(payload), payload, error="missing_values"
        )
    key = f"{call.call_id}:post_call:{function.name}"
    try:
        return await executor.run(function, resolved.arguments, resolved.context, tool_call_id=key)
    except Exception as exc:  # Executor.run does not raise; a bug of ours must not either
        log.exception("post-call function %s raised", function.name)
        payload = {"error": "function_failed", "reason": "internal", "detail": str(exc)}
        return ToolResult(
            function.name, False, error_content(payload), payload, error="function_failed"
        )


def outcome_of(result: ToolResult, latency_ms: float | None = None) -> dict[str, Any]:
    """A post-call function's entry in the execution record."""
    detail = None
    if not result.ok and isinstance(result.data, dict):
        detail = result.data.get("detail")
    return {
        "function": result.function,
        "state": "succeeded"
        if result.ok
        else "skipped"
        if result.error == "missing_values"
        else "failed",
        "ok": result.ok,
        "status": result.status,
        "error": result.error,
        "detail": detail if isinstance(detail, str) else None,
        "latency_ms": round(latency_ms if latency_ms is not None else result.timings.total_ms, 3),
    }


@dataclass
class PostCallReport:
    """What the inline post-call work did (``CallSession.post_call`` after ``finish()``)."""

    call: FinishedCall
    extraction: Extraction | None
    #: each post-call function's entry in the record (state, ok, status, error, latency)
    functions: list[dict[str, Any]]
    record: dict[str, Any]
    webhook: Delivery | None = None

    @property
    def ok(self) -> bool:
        """Everything ran and was delivered (an incomplete extraction is not a failure)."""
        return (
            (self.extraction is None or self.extraction.error is None)
            and all(f.get("ok") for f in self.functions)
            and (self.webhook is None or self.webhook.ok)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "extraction": self.extraction.to_dict() if self.extraction is not None else None,
            "functions": list(self.functions),
            "webhook": self.webhook.to_dict() if self.webhook is not None else None,
            "record": self.record,
        }
