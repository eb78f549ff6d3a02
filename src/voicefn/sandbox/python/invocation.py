"""One invocation, supervised: the run message, the child's frames, egress, and the outcome.

The supervisor owns the wall clock (a timeout kills the whole worker), answers the child's HTTP
requests through the ``egress`` callback, bounds and validates everything the child sends, and
turns the child's exit (code, signal, CPU time, RSS, as reported by the zygote) into an
:class:`Outcome`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .pool import ChildPipes, Worker
from .protocol import (
    Eof,
    FrameReader,
    ProtocolError,
    StdioCollector,
    clean_text,
    encode_frame,
    is_json_value,
)

Egress = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
ErrorKind = Literal[
    "timeout",
    "memory",
    "crashed",
    "invalid_output",
    "exception",
    "too_many_requests",
    "unavailable",
]

MAX_HTTP_FRAME = 6 << 20  # a 4 MiB request body, base64, and headers
MAX_RESPONSE_BODY_B64 = 11 << 20  # ~8 MiB decoded
MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192
MAX_DETAIL = 600
MAX_LOG_MESSAGE = 4000
STDIO_LIMIT = 64 * 1024
EXIT_REPORT_TIMEOUT_S = 2.0
AS_SLACK_BYTES = 32 << 20
EGRESS_GRACE_S = 1.0
MAX_UNREAD_BYTES = 32 << 20
_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
_HINTS = frozenset(
    {
        "seccomp",
        "mount-namespace",
        "read-only-mount",
        "file-permissions",
        "egress-policy",
        "rlimit-as",
        "rlimit-nproc",
        "rlimit-nofile",
    }
)
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_DROP_RESPONSE_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)
_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}


@dataclass(frozen=True)
class Limits:
    """Per-invocation limits. ``memory_mb`` is the address space the function may use on top of
    the warm interpreter (RLIMIT_AS = the zygote's address space + memory_mb + a small slack)."""

    timeout_s: float = 5.0
    memory_mb: int = 256
    cpu_s: float = 5.0
    max_output_bytes: int = 1 << 20
    max_log_lines: int = 200
    max_http_requests: int = 20

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, not {value!r}")
        for name in ("memory_mb", "max_output_bytes", "max_log_lines", "max_http_requests"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, not {value!r}")
        if self.memory_mb < 16:
            raise ValueError("Limits.memory_mb must be at least 16")


@dataclass
class Outcome:
    """How one invocation ended. Everything in it is safe to log; ``detail`` to show an LLM."""

    ok: bool
    value: Any
    error: str | None
    detail: str
    logs: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    isolation: str = "isolated"  # or "weak" (mode="unsafe-process")

    @property
    def weakly_isolated(self) -> bool:
        return self.isolation != "isolated"


class Invocation:
    """One run: the child's pipes, its HTTP requests, its logs, and how it ended."""

    def __init__(
        self,
        worker: Worker,
        pipes: ChildPipes,
        limits: Limits,
        egress: Egress,
        *,
        weak_note: str,
        started: float,
    ) -> None:
        self.worker = worker
        self.pipes = pipes
        self.limits = limits
        self.egress = egress
        self.weak_note = weak_note
        self.started = started
        self.loop = asyncio.get_running_loop()
        self.logs: list[dict[str, Any]] = []
        self.dropped_logs = 0
        self.http: list[dict[str, Any]] = []
        self.http_count = 0
        self.http_tasks: set[asyncio.Task[None]] = set()
        self.worker_healthy = True
        self.child_done = False
        self.writer: asyncio.WriteTransport | None = None
        self.reader: FrameReader | None = None
        self.stdio: StdioCollector | None = None
        self.as_bytes = worker.baseline_bytes + limits.memory_mb * (1 << 20) + AS_SLACK_BYTES
        self.cpu_limit = max(1, math.ceil(limits.cpu_s))
        self.ready_at = time.perf_counter()
        if weak_note:
            self._log("warning", f"This function ran {weak_note}", "sandbox")

    # -- main loop ---------------------------------------------------------------------

    async def execute(
        self, code: str, entrypoint: str, arguments: dict[str, Any], context: dict[str, Any]
    ) -> Outcome:
        max_frame = max(self.limits.max_output_bytes, MAX_HTTP_FRAME) + 4096
        self.reader = FrameReader(
            self.loop,
            self.pipes.from_child,
            max_frame=max_frame,
            max_total=4 * max_frame + (self.limits.max_log_lines + 8) * 8192,
            max_frames=self.limits.max_log_lines + 2 * self.limits.max_http_requests + 32,
        )
        self.stdio = StdioCollector(self.loop, self.pipes.stdio, STDIO_LIMIT)
        fd, self.pipes.to_child = self.pipes.to_child, -1
        transport, _ = await self.loop.connect_write_pipe(
            asyncio.BaseProtocol, os.fdopen(fd, "wb", buffering=0)
        )
        self.writer = transport
        self.worker.request_spawn()  # the zygote pre-forks the next child while this one runs
        self._send(
            {
                "t": "run",
                "code": code,
                "entrypoint": entrypoint,
                "arguments": arguments,
                "context": context,
                "limits": {
                    "as_bytes": self.as_bytes,
                    "cpu_s": self.cpu_limit,
                    "max_output_bytes": self.limits.max_output_bytes,
                    "max_log_lines": self.limits.max_log_lines,
                },
            }
        )
        deadline = self.loop.time() + self.limits.timeout_s
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return self._wall_clock()
            try:
                item = await asyncio.wait_for(self.reader.queue.get(), remaining)
            except TimeoutError:
                return self._wall_clock()
            if isinstance(item, ProtocolError):
                return self._protocol_violation(str(item))
            if isinstance(item, Eof):
                return await self._child_ended(deadline)
            outcome = self._handle(item)
            if outcome is not None:
                return outcome

    def _handle(self, msg: dict[str, Any]) -> Outcome | None:
        kind = msg["t"]
        if kind == "log":
            level = msg.get("level")
            self._log(
                level if isinstance(level, str) and level in _LEVELS else "info",
                clean_text(msg.get("message", ""), MAX_LOG_MESSAGE),
                clean_text(msg.get("source", "logger"), 16),
            )
            return None
        if kind == "http":
            return self._http_request(msg)
        if kind == "result":
            return self._result(msg)
        if kind == "error":
            return self._error(msg)
        return self._protocol_violation(f"unknown message type {clean_text(kind, 20)!r}")

    # -- results -----------------------------------------------------------------------

    def _result(self, msg: dict[str, Any]) -> Outcome:
        value = msg.get("value")
        if not isinstance(value, dict) or not is_json_value(value):
            return self._finish_child(
                self._fail("invalid_output", "the result is not a JSON object", "protocol")
            )
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > self.limits.max_output_bytes:
            limit = self.limits.max_output_bytes
            return self._finish_child(
                self._fail(
                    "invalid_output",
                    f"the result is {size} bytes; the limit is {limit}",
                    "protocol",
                )
            )
        return self._finish_child(self._outcome(True, value, None, "", None))

    def _error(self, msg: dict[str, Any]) -> Outcome:
        kind = msg.get("kind")
        detail = clean_text(msg.get("detail", ""), MAX_DETAIL)
        hint = msg.get("hint")
        if kind == "memory":
            return self._finish_child(self._out_of_memory())
        if kind == "invalid_output":
            return self._finish_child(self._fail("invalid_output", detail, "protocol"))
        if kind == "exception":
            layer = hint if isinstance(hint, str) and hint in _HINTS else None
            return self._finish_child(self._fail("exception", detail, layer))
        return self._protocol_violation("unknown error kind")

    def _wall_clock(self) -> Outcome:
        # The whole worker goes: its children, its zygote, its namespaces. The pool starts a
        # fresh one in the background; other tenants' workers are untouched.
        self.worker_healthy = False
        self.worker.kill()
        return self._fail(
            "timeout",
            f"the function did not finish within {self.limits.timeout_s:g} s (wall clock)",
            "wall-clock",
        )

    def _protocol_violation(self, why: str) -> Outcome:
        return self._finish_child(
            self._fail("invalid_output", f"protocol violation: {why}", "protocol")
        )

    async def _child_ended(self, deadline: float) -> Outcome:
        """The child closed its pipe without a result: ask the zygote how it ended."""
        self.child_done = True
        info: dict[str, Any] | None = None
        wait = max(0.05, min(EXIT_REPORT_TIMEOUT_S, deadline - self.loop.time()))
        with contextlib.suppress(TimeoutError):
            info = await asyncio.wait_for(
                asyncio.shield(self.worker.exit_future(self.pipes.cid)), wait
            )
        if info is None:
            if not self.worker.alive:
                return self._fail("crashed", "the sandbox worker died", "process")
            self.worker.kill_child(self.pipes.cid)
            return self._fail(
                "crashed", "the function closed its channel without a result", "protocol"
            )
        sig, code = info["signal"], info["code"]
        cpu, rss = info["cpu_s"], info["maxrss_kb"] * 1024
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= self.cpu_limit - 0.05):
            return self._fail(
                "timeout",
                f"the function used more than {self.cpu_limit} s of CPU time",
                "rlimit-cpu",
            )
        if sig == signal.SIGSYS:
            return self._fail(
                "crashed",
                "the function made a system call the sandbox forbids (killed by seccomp)",
                "seccomp",
            )
        if sig is not None and rss >= 0.75 * self.limits.memory_mb * (1 << 20):
            return self._out_of_memory()
        if sig == signal.SIGXFSZ:
            return self._fail("crashed", "the function tried to write a file", "rlimit-fsize")
        if sig is not None:
            name = _SIGNAL_NAMES.get(sig, str(sig))
            return self._fail("crashed", f"the function's process died ({name})", None)
        return self._fail(
            "crashed",
            f"the function's process exited (code {code}) without returning a result",
            None,
        )

    def _finish_child(self, outcome: Outcome) -> Outcome:
        """The child answered: make sure it is gone (it exits by itself; this is a backstop)."""
        if self.worker.alive:
            self.worker.kill_child(self.pipes.cid)
        return outcome

    def _out_of_memory(self) -> Outcome:
        return self._fail(
            "memory", f"out of memory (limit {self.limits.memory_mb} MB)", "rlimit-as"
        )

    def _fail(self, error: str, detail: str, stopped_by: str | None) -> Outcome:
        return self._outcome(False, None, error, detail, stopped_by)

    def _outcome(
        self, ok: bool, value: Any, error: str | None, detail: str, stopped_by: str | None
    ) -> Outcome:
        self._collect_stdio()
        if self.dropped_logs:
            self.logs.append(
                {
                    "level": "warning",
                    "message": f"{self.dropped_logs} more log lines were dropped",
                    "time": round(time.time(), 3),
                    "source": "sandbox",
                }
            )
            self.dropped_logs = 0
        now = time.perf_counter()
        outcome = Outcome(
            ok=ok,
            value=value,
            error=error,
            detail=detail,
            logs=self.logs,
            http=self.http,
            stopped_by=stopped_by,
            timings={
                "wait_ms": round((self.ready_at - self.started) * 1000, 3),
                "run_ms": round((now - self.ready_at) * 1000, 3),
                "total_ms": round((now - self.started) * 1000, 3),
            },
        )
        if self.weak_note:
            outcome.isolation = "weak"
            outcome.detail = f"[WEAKLY isolated: unsafe-process mode] {detail}".strip()
        return outcome

    # -- logs --------------------------------------------------------------------------

    def _log(self, level: str, message: str, source: str) -> None:
        if len(self.logs) >= self.limits.max_log_lines + (1 if self.weak_note else 0):
            self.dropped_logs += 1
            return
        self.logs.append(
            {"level": level, "message": message, "time": round(time.time(), 3), "source": source}
        )

    def _collect_stdio(self) -> None:
        if self.stdio is None:
            return
        self.stdio.drain()
        for line in self.stdio.lines():
            self._log("info", clean_text(line, MAX_LOG_MESSAGE), "stdio")
        self.stdio.data.clear()

    # -- egress ------------------------------------------------------------------------

    def _http_request(self, msg: dict[str, Any]) -> Outcome | None:
        rid = msg.get("id")
        if not isinstance(rid, int) or isinstance(rid, bool):
            return self._protocol_violation("an HTTP request without an id")
        request = _validate_request(msg)
        if isinstance(request, str):
            return self._protocol_violation(request)
        self.http_count += 1
        if self.http_count > self.limits.max_http_requests:
            self.http.append(
                {
                    "method": request["method"],
                    "url": clean_text(request["url"], 2000),
                    "error": "too many requests",
                    "ms": 0.0,
                }
            )
            return self._finish_child(
                self._fail(
                    "too_many_requests",
                    f"the function made more than {self.limits.max_http_requests} HTTP requests",
                    "request-limit",
                )
            )
        task = asyncio.ensure_future(self._egress_call(rid, request))
        self.http_tasks.add(task)
        task.add_done_callback(self.http_tasks.discard)
        return None

    async def _egress_call(self, rid: int, request: dict[str, Any]) -> None:
        started = time.perf_counter()
        record: dict[str, Any] = {
            "method": request["method"],
            "url": clean_text(request["url"], 2000),
        }
        self.http.append(record)
        timeout = request.get("timeout")
        try:
            response = await asyncio.wait_for(
                self.egress(dict(request)),
                # a little later than the child's own timeout, so that one fires first
                timeout=timeout + EGRESS_GRACE_S if isinstance(timeout, float) else None,
            )
            reply = _validate_response(response)
        except TimeoutError:
            reply = {"error": "the request timed out"}
        except asyncio.CancelledError:
            record["error"] = "cancelled"
            record["ms"] = round((time.perf_counter() - started) * 1000, 3)
            raise
        except Exception as exc:
            reply = {"error": f"the request failed ({type(exc).__name__})"}
        if "error" in reply:
            record["error"] = reply["error"]
        else:
            record["status"] = reply["status"]
        record["ms"] = round((time.perf_counter() - started) * 1000, 3)
        self._send({"t": "http_response", "id": rid, **reply})

    def _send(self, msg: dict[str, Any]) -> None:
        if self.writer is None or self.writer.is_closing():
            return
        if self.writer.get_write_buffer_size() > MAX_UNREAD_BYTES:
            return  # the child is not reading what it asked for: it gets nothing more
        self.writer.write(encode_frame(msg))

    # -- cleanup -----------------------------------------------------------------------

    def cleanup(self) -> None:
        for task in list(self.http_tasks):
            task.cancel()
        if self.reader is not None:
            self.reader.stop()
        if self.stdio is not None:
            self.stdio.close()
        if self.writer is not None and not self.writer.is_closing():
            self.writer.abort()
        self.pipes.close()
        self.worker.forget(self.pipes.cid)


def _validate_request(msg: dict[str, Any]) -> dict[str, Any] | str:
    method, url, headers, body = (
        msg.get("method"),
        msg.get("url"),
        msg.get("headers"),
        msg.get("body"),
    )
    if not isinstance(method, str) or not _METHOD.match(method):
        return "a bad HTTP method"
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        return "a bad URL"
    if not isinstance(headers, list) or len(headers) > MAX_HEADERS:
        return "bad HTTP headers"
    clean_headers: list[list[str]] = []
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, str) and len(x) <= MAX_HEADER_CHARS for x in pair)
        ):
            return "bad HTTP headers"
        clean_headers.append([pair[0], pair[1]])
    if not isinstance(body, str):
        return "a bad HTTP body"
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return "a bad HTTP body"
    timeout = msg.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float | None):
        return "a bad timeout"
    return {
        "method": method,
        "url": url,
        "headers": clean_headers,
        "body": body,
        "timeout": max(0.0, float(timeout))
        if timeout is not None and math.isfinite(timeout)
        else None,
    }


def _validate_response(response: Any) -> dict[str, Any]:
    if not isinstance(response, dict):
        return {"error": "the egress callback returned no response"}
    if "error" in response:
        return {"error": clean_text(response["error"], 500)}
    status, headers, body = (
        response.get("status"),
        response.get("headers", []),
        response.get("body", ""),
    )
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return {"error": "the egress callback returned a bad status"}
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_B64:
        return {"error": "the response body is too large or malformed"}
    clean_headers: list[list[str]] = []
    for pair in list(headers or [])[:MAX_HEADERS]:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            key, value = str(pair[0]), str(pair[1])
            if key.lower() not in _DROP_RESPONSE_HEADERS:
                clean_headers.append([key[:MAX_HEADER_CHARS], value[:MAX_HEADER_CHARS]])
    return {"status": status, "headers": clean_headers, "body": body}
