"""The supervisor's side of one job: its frames, logs, HTTP through egress, limits, the result.

Every frame comes from the tenant's Deno process and is untrusted: each field is checked here
(types, integers in range, finite numbers, bounded strings) before anything uses it, and a frame
that fails is a :class:`ProtocolError` (the process is killed, the job is ``crashed``). The
supervisor alone decides ``stopped_by`` (from the error kind, its own clock and the error text;
a ``layer`` the process names is ignored) and its own log lines (``source: "sandbox"``); every
line the process sends is the function's (``source: "function"``).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from typing import Any

from ..common import EgressCalls, ProtocolError, clean_text
from ..http_failure import with_engine_note
from ._advice import user_advice
from ._modules import BLOCKED_MESSAGE
from .api import Egress, ErrorKind, Limits, Outcome

MAX_DETAIL = 600
MAX_LOG_MESSAGE = 4000
MAX_ID = (1 << 53) - 1  # ids are JavaScript safe integers
MAX_TIMEOUT_S = 24 * 3600.0
MAX_STRING = 64 << 20  # no string field is longer than a frame anyway
# The host's own timer fires no earlier than the supervisor's deadline (it starts later);
# rounding of timeout_ms aside.
DEADLINE_TOLERANCE_S = 0.005

_LEVELS = frozenset({"log", "info", "debug", "warn", "error"})
_RESULT_ERRORS = frozenset({"exception", "invalid_output", "timeout", "crashed"})
_PERMISSION = re.compile(r"NotCapable|PermissionDenied|Requires \w+ access")
_NO_REMOTE = re.compile(r"--no-remote|--no-npm|remote specifier|npm specifier|jsr specifier")
_FRAME_KINDS = frozenset({"log", "fetch", "result"})
#: an HTTP request's error as the engine records it
_TIMED_OUT = re.compile(r"timed out|no response within")
#: a function's error that names a timeout (axios: ECONNABORTED/ETIMEDOUT; fetch: TimeoutError)
_TIMEOUT_ERROR = re.compile(r"TimeoutError|ETIMEDOUT|ECONNABORTED|timeout of \d+ ?ms exceeded")


def _job_id(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_ID:
        raise ProtocolError("a frame with a bad job id")
    return value


def _string(frame: dict[str, Any], key: str, default: str | None = None) -> str:
    value = frame.get(key, default)
    if not isinstance(value, str) or len(value) > MAX_STRING:
        raise ProtocolError(f"a frame with a bad {key!r}")
    return value


def _fetch_request(frame: dict[str, Any]) -> dict[str, Any]:
    """Only the fields of a request, each of the right type and in range."""
    timeout = frame.get("timeout")
    if timeout is not None:
        if (
            type(timeout) not in (int, float)
            or (type(timeout) is int and not 0 <= timeout <= MAX_TIMEOUT_S)
            or not math.isfinite(timeout)
            or not 0 <= timeout <= MAX_TIMEOUT_S
        ):
            raise ProtocolError("an HTTP request with a bad timeout")
        timeout = float(timeout)
    return {
        "method": frame.get("method"),
        "url": frame.get("url"),
        "headers": frame.get("headers"),
        "body": frame.get("body"),
        "timeout": timeout,
    }


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

    def run_frame(
        self, code: str, entrypoint: str, data_json: str, realm: bool = True
    ) -> dict[str, Any]:
        limits = self.limits
        return {
            "t": "run",
            "realm": realm,
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
        """Take one frame from the host; the outcome once the job's result came.

        :class:`ProtocolError` for anything malformed, whatever it is (never another error).
        """
        try:
            return self._handle(frame)
        except ProtocolError:
            raise
        except Exception as exc:  # e.g. a number no check above foresaw
            raise ProtocolError(f"an unreadable frame ({type(exc).__name__})") from None

    def _handle(self, frame: dict[str, Any]) -> Outcome | None:
        kind = frame.get("t")
        if kind not in _FRAME_KINDS:
            if kind == "pong":
                return None
            raise ProtocolError("an unknown frame")
        if _job_id(frame.get("id")) != self.id:
            raise ProtocolError("a frame for another job")
        if kind == "log":
            self._on_log(frame)
        elif kind == "fetch":
            self._on_fetch(frame)
        else:
            outcome = self._result(frame)
            runner = frame.get("runner")
            outcome.runner = runner if runner in ("realm", "worker") else None
            return outcome
        return None

    def _on_log(self, frame: dict[str, Any]) -> None:
        level = frame.get("level")
        message = _string(frame, "message", "")
        if len(self.logs) >= self.limits.max_log_lines:
            self.dropped_logs += 1
            return
        self.logs.append(
            {
                "level": level if isinstance(level, str) and level in _LEVELS else "log",
                # Deno's "--allow-read" advice in a caught error the function prints is as
                # wrong for it as in an error it throws
                "message": user_advice(clean_text(message, MAX_LOG_MESSAGE)),
                "source": "function",  # whatever the frame says
            }
        )

    # -- HTTP through egress -------------------------------------------------------------

    def _on_fetch(self, frame: dict[str, Any]) -> None:
        rid = _job_id(frame.get("rid"))
        if not self.calls.submit(rid, _fetch_request(frame)) and not self.stop_sent:
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
        """The job's outcome: ``value`` if ``error`` is None, with its logs and HTTP record.

        A job that failed (an exception or a timeout) because of one of its HTTP requests has
        what the engine saw of that request after its own error text (``with_engine_note``).
        """
        logs = list(self.logs)
        if self.dropped_logs:
            logs.append(
                {
                    "level": "warn",
                    "message": f"further log lines were dropped "
                    f"(limit {self.limits.max_log_lines})",
                    "source": "sandbox",
                }
            )
        if self.calls.too_many and error != "memory":
            value, error, stopped_by = None, "too_many_requests", "request-limit"
            detail = f"the function made more than {self.limits.max_http_requests} HTTP requests"
        if stopped_by is None and self.calls.denied:
            stopped_by = "egress-policy"
        detail = with_engine_note(clean_text(detail, MAX_DETAIL), self.calls.http, error)
        return Outcome(
            ok=error is None,
            value=value,
            error=error,
            detail=detail,
            logs=logs,
            http=list(self.calls.http),
            stopped_by=stopped_by,
        )

    def _result(self, frame: dict[str, Any]) -> Outcome:
        ok = frame.get("ok")
        if not isinstance(ok, bool):
            raise ProtocolError("a result without ok")
        if ok:
            text = _string(frame, "json")
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
        detail = clean_text(_string(frame, "detail", ""), MAX_DETAIL) or "the function failed"
        if error == "too_many_requests" and self.calls.too_many:
            return self.outcome("too_many_requests", "", "request-limit")
        if error == "timeout" and time.monotonic() < self.deadline - DEADLINE_TOLERANCE_S:
            raise ProtocolError("a timeout before the deadline")
        kind: ErrorKind = error if isinstance(error, str) and error in _RESULT_ERRORS else "crashed"  # type: ignore[assignment]
        layer = self._layer(kind, detail)  # from Deno's own words, before they are rewritten
        if kind == "exception" and time.monotonic() >= self.deadline:
            # It failed because the deadline cut it short (its HTTP request was cancelled there):
            # the wall clock stopped it, whichever of the two the host reported first.
            kind = "timeout"
            detail = f"the function did not finish within {self.limits.timeout_s:g} s"
            return self.outcome(kind, detail, self._layer(kind, detail))
        if kind == "exception":
            detail = user_advice(detail)
            if self._http_timed_out(detail):
                return self.outcome("timeout", f"an HTTP request timed out: {detail}", layer)
        return self.outcome(kind, detail, layer)

    def _http_timed_out(self, detail: str) -> bool:
        """Whether the function failed because one of its HTTP requests timed out: the engine
        saw a request time out, or one was still waiting and the error names a timeout (axios'
        or fetch's own ``timeout``/``AbortSignal.timeout``)."""
        records = self.calls.http
        if any(_TIMED_OUT.search(str(r.get("error", ""))) for r in records):
            return True
        waiting = any("status" not in r and "error" not in r for r in records)
        return waiting and _TIMEOUT_ERROR.search(detail) is not None

    @staticmethod
    def _layer(kind: ErrorKind, detail: str) -> str | None:
        """Which layer stopped the function, decided here from the error kind and text."""
        if kind == "timeout":
            return "wall-clock"  # checked against the supervisor's own deadline
        if kind == "invalid_output":
            return "output-limit" if "return value is larger than" in detail else None
        if kind != "exception":
            return None
        if BLOCKED_MESSAGE in detail:
            return "blocked-module"
        if _NO_REMOTE.search(detail):
            return "deno-no-remote"
        if _PERMISSION.search(detail):
            return "deno-permissions"
        return None
