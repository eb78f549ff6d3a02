"""The supervisor's side of one job: its frames, logs, HTTP through egress, limits, the result."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..common import EgressCalls, ProtocolError, clean_text
from .api import Egress, ErrorKind, Limits, Outcome

MAX_DETAIL = 600
MAX_LOG_MESSAGE = 4000

_LEVELS = frozenset({"log", "info", "debug", "warn", "error"})
_JS_LAYERS = frozenset(
    {"wall-clock", "deno-permissions", "deno-no-remote", "output-limit", "request-limit"}
)
_RESULT_ERRORS = frozenset({"exception", "invalid_output", "timeout", "crashed"})


class Job:
    """One job in a tenant's process: :meth:`handle` takes its frames until the result."""

    def __init__(
        self, job_id: int, limits: Limits, egress: Egress, send: Callable[[dict[str, Any]], None]
    ) -> None:
        self.id = job_id
        self.limits = limits
        self.send = send
        self.logs: list[dict[str, Any]] = []
        self.dropped_logs = 0
        self.deadline = time.monotonic() + limits.timeout_s
        self.calls = EgressCalls(
            egress,
            max_requests=limits.max_http_requests,
            deadline=self.deadline,
            reply=self._reply,
        )
        self.stop_sent = False
        # the largest frame accepted: a result is JSON text inside JSON (escaping can grow it)
        self.max_frame = max(8 << 20, 6 * limits.max_output_bytes + (1 << 20))

    def run_frame(self, code: str, entrypoint: str, data_json: str) -> dict[str, Any]:
        limits = self.limits
        return {
            "t": "run",
            "id": self.id,
            "code": code,
            "entrypoint": entrypoint,
            "data": data_json,
            "timeout_ms": round(limits.timeout_s * 1000),
            "max_output_bytes": limits.max_output_bytes,
            "max_log_lines": limits.max_log_lines,
            "max_http_requests": limits.max_http_requests,
        }

    def handle(self, frame: dict[str, Any]) -> Outcome | None:
        """Take one frame from the host; the outcome once the job's result came."""
        kind = frame.get("t")
        if frame.get("id") != self.id:
            if kind in ("log", "fetch", "result"):
                raise ProtocolError("a frame for another job")
            return None
        if kind == "log":
            self._on_log(frame)
        elif kind == "fetch":
            self._on_fetch(frame)
        elif kind == "result":
            return self._result(frame)
        else:
            raise ProtocolError("an unknown frame")
        return None

    def _on_log(self, frame: dict[str, Any]) -> None:
        if len(self.logs) >= self.limits.max_log_lines:
            self.dropped_logs += 1
            return
        level = frame.get("level")
        self.logs.append(
            {
                "level": level if isinstance(level, str) and level in _LEVELS else "log",
                "message": clean_text(frame.get("message", ""), MAX_LOG_MESSAGE),
            }
        )

    # -- HTTP through egress -------------------------------------------------------------

    def _on_fetch(self, frame: dict[str, Any]) -> None:
        if not self.calls.submit(frame.get("rid"), frame) and not self.stop_sent:
            self.stop_sent = True
            self.send(
                {
                    "t": "stop",
                    "id": self.id,
                    "error": "too_many_requests",
                    "detail": f"more than {self.limits.max_http_requests} HTTP requests",
                    "layer": "request-limit",
                }
            )

    def _reply(self, rid: int, answer: dict[str, Any]) -> None:
        self.send({"t": "fetch_result", "id": self.id, "rid": rid, **answer})

    async def cancel_tasks(self) -> None:
        await self.calls.aclose()

    # -- the outcome ---------------------------------------------------------------------

    def outcome(
        self,
        error: ErrorKind | None,
        detail: str = "",
        stopped_by: str | None = None,
        value: Any = None,
    ) -> Outcome:
        """The job's outcome: ``value`` if ``error`` is None, with its logs and HTTP record."""
        logs = list(self.logs)
        if self.dropped_logs:
            logs.append(
                {
                    "level": "warn",
                    "message": f"[sandbox] further log lines were dropped "
                    f"(limit {self.limits.max_log_lines})",
                }
            )
        if self.calls.too_many and error != "memory":
            value, error, stopped_by = None, "too_many_requests", "request-limit"
            detail = f"the function made more than {self.limits.max_http_requests} HTTP requests"
        if stopped_by is None and self.calls.denied:
            stopped_by = "egress-policy"
        return Outcome(
            ok=error is None,
            value=value,
            error=error,
            detail=clean_text(detail, MAX_DETAIL),
            logs=logs,
            http=list(self.calls.http),
            stopped_by=stopped_by,
        )

    def _result(self, frame: dict[str, Any]) -> Outcome:
        if frame.get("ok") is True:
            text = frame.get("json")
            if not isinstance(text, str):
                raise ProtocolError("a result without a value")
            if len(text.encode("utf-8", "surrogatepass")) > self.limits.max_output_bytes:
                return self.outcome(
                    "invalid_output",
                    f"the return value is larger than {self.limits.max_output_bytes} bytes",
                    "output-limit",
                )
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):
                return self.outcome("invalid_output", "the return value is not valid JSON")
            return self.outcome(None, value=value)
        error = frame.get("error")
        if error == "too_many_requests" and self.calls.too_many:
            return self.outcome("too_many_requests", "", "request-limit")
        kind: ErrorKind = error if isinstance(error, str) and error in _RESULT_ERRORS else "crashed"  # type: ignore[assignment]
        layer = frame.get("layer")
        return self.outcome(
            kind,
            clean_text(frame.get("detail", ""), MAX_DETAIL) or "the function failed",
            layer if isinstance(layer, str) and layer in _JS_LAYERS else None,
        )
