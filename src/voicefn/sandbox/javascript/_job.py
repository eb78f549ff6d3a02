"""The supervisor's side of one job: its frames, logs, HTTP through egress, limits, the result."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from ...egress import EgressDenied
from ._protocol import ProtocolError, clean, ms, safe_url, validate_request, validate_response
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
        self.egress = egress
        self.send = send
        self.logs: list[dict[str, Any]] = []
        self.dropped_logs = 0
        self.http: list[dict[str, Any]] = []
        self.http_count = 0
        self.denied = False
        self.too_many = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.deadline = time.monotonic() + limits.timeout_s
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
                "message": clean(frame.get("message", ""), MAX_LOG_MESSAGE),
            }
        )

    # -- HTTP through egress -------------------------------------------------------------

    def _on_fetch(self, frame: dict[str, Any]) -> None:
        rid = frame.get("rid")
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise ProtocolError("an HTTP request without an id")
        request = validate_request(frame)
        if isinstance(request, str):
            raise ProtocolError(request)
        self.http_count += 1
        if self.http_count > self.limits.max_http_requests:
            if not self.too_many:
                self.too_many = True
                self.http.append(
                    {
                        "method": request["method"],
                        "url": safe_url(request["url"]),
                        "error": "too many requests",
                        "ms": 0.0,
                    }
                )
                self.send(
                    {
                        "t": "stop",
                        "id": self.id,
                        "error": "too_many_requests",
                        "detail": f"more than {self.limits.max_http_requests} HTTP requests",
                        "layer": "request-limit",
                    }
                )
            return
        task = asyncio.ensure_future(self._egress_call(rid, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _egress_call(self, rid: int, request: dict[str, Any]) -> None:
        started = time.perf_counter()
        record: dict[str, Any] = {"method": request["method"], "url": safe_url(request["url"])}
        self.http.append(record)
        remaining = max(0.001, self.deadline - time.monotonic())
        request["timeout"] = round(remaining, 3)
        try:
            response = await asyncio.wait_for(self.egress(dict(request)), timeout=remaining)
            if isinstance(response, dict) and response.get("denied") is True:
                self.denied = True
            reply = validate_response(response)
        except EgressDenied as exc:
            self.denied = True
            reply = {"error": f"refused by the egress policy: {clean(str(exc), 300)}"}
        except TimeoutError:
            reply = {"error": "the request timed out"}
        except asyncio.CancelledError:
            record["error"] = "cancelled"
            record["ms"] = ms(time.perf_counter() - started)
            raise
        except Exception as exc:
            reply = {"error": f"the request failed ({type(exc).__name__})"}
        if "error" in reply:
            record["error"] = reply["error"]
        else:
            record["status"] = reply["status"]
        record["ms"] = ms(time.perf_counter() - started)
        self.send({"t": "fetch_result", "id": self.id, "rid": rid, **reply})

    async def cancel_tasks(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

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
        if self.too_many and error != "memory":
            value, error, stopped_by = None, "too_many_requests", "request-limit"
            detail = f"the function made more than {self.limits.max_http_requests} HTTP requests"
        if stopped_by is None and self.denied:
            stopped_by = "egress-policy"
        return Outcome(
            ok=error is None,
            value=value,
            error=error,
            detail=clean(detail, MAX_DETAIL),
            logs=logs,
            http=list(self.http),
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
        if error == "too_many_requests" and self.too_many:
            return self.outcome("too_many_requests", "", "request-limit")
        kind: ErrorKind = error if isinstance(error, str) and error in _RESULT_ERRORS else "crashed"  # type: ignore[assignment]
        layer = frame.get("layer")
        return self.outcome(
            kind,
            clean(frame.get("detail", ""), MAX_DETAIL) or "the function failed",
            layer if isinstance(layer, str) and layer in _JS_LAYERS else None,
        )
