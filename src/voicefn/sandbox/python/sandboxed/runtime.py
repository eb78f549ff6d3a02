"""What user code gets inside the sandbox, and :func:`invoke`, which runs it once.

User code sees ``ctx`` (:class:`RunContext`: ``variables``, ``call``, ``logger``, ``http``), a
module-level ``logger``, ``httpx`` (patched: requests go through egress) and ``RunContext``.
``print`` and ``sys.stderr`` become log entries, like the logger's records.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import io
import logging
import sys
import traceback
from typing import Any

import httpx

from .channel import Channel
from .egress import SandboxAsyncClient, use_channel
from .results import FILENAME, MEMORY_ERROR, classify, describe, result_frame

MAX_LOG_CHARS = 4000


class LogSink:
    """Sends log entries to the supervisor, at most ``max_lines`` (then one warning)."""

    def __init__(self, channel: Channel, max_lines: int) -> None:
        self.channel = channel
        self.max_lines = max_lines
        self.count = 0

    def emit(self, level: str, message: str, source: str) -> None:
        if self.count > self.max_lines:
            return
        self.count += 1
        msg: dict[str, Any] = {"t": "log_limit"}  # the supervisor notes it in its own words
        if self.count <= self.max_lines:
            msg = {"t": "log", "level": level, "message": message[:MAX_LOG_CHARS], "source": source}
        with contextlib.suppress(OSError, ValueError):
            self.channel.send(msg)


class SinkHandler(logging.Handler):
    def __init__(self, sink: LogSink) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                message += "\n" + "".join(traceback.format_exception_only(type(exc), exc)).strip()
        except Exception as exc:  # a broken format string in user code
            message = f"(unformattable log message: {type(exc).__name__})"
        self.sink.emit(record.levelname.lower(), message, "logger")


class LogStream(io.TextIOBase):
    """``sys.stdout`` / ``sys.stderr`` for user code: each line becomes a log entry."""

    def __init__(self, sink: LogSink, level: str, source: str) -> None:
        self.sink = sink
        self.level = level
        self.source = source
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._buf += s
        while "\n" in self._buf or len(self._buf) > MAX_LOG_CHARS:
            line, sep, rest = self._buf.partition("\n")
            if not sep:
                line, rest = self._buf[:MAX_LOG_CHARS], self._buf[MAX_LOG_CHARS:]
            self._buf = rest
            self.sink.emit(self.level, line, self.source)
        return len(s)

    def flush(self) -> None:
        if self._buf:
            line, self._buf = self._buf, ""
            self.sink.emit(self.level, line, self.source)


class CallInfo:
    """``ctx.call``: who is on the call."""

    __slots__ = ("agent_id", "call_sid", "execution_id", "from_number", "to_number")

    def __init__(self, data: dict[str, Any]) -> None:
        for key in self.__slots__:
            value = data.get(key)
            setattr(self, key, value if isinstance(value, str | int | float) else None)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.__slots__ else default

    def __getitem__(self, key: str) -> Any:
        if key not in self.__slots__:
            raise KeyError(key)
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self.__slots__}

    def __repr__(self) -> str:
        return f"CallInfo({self.to_dict()!r})"


class RunContext:
    """``ctx``: ``variables`` (dict), ``call`` (agent_id, call_sid, ...), ``logger``, ``http``."""

    def __init__(self, variables: dict[str, Any], call: CallInfo, logger: logging.Logger) -> None:
        self.variables = variables
        self.userdata = variables
        self.call = call
        self.logger = logger
        self._http: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` whose requests go through the platform's egress policy."""
        if self._http is None:
            self._http = SandboxAsyncClient(timeout=10.0, follow_redirects=True)
        return self._http

    def __repr__(self) -> str:
        return f"RunContext(call={self.call!r}, variables={list(self.variables)!r})"


def _dict_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def invoke(channel: Channel, run: dict[str, Any]) -> None:
    """Run one invocation and send its ``result`` or ``error`` frame."""
    use_channel(channel)
    channel.attach(asyncio.get_running_loop())
    limits = run.get("limits") or {}
    max_output = int(limits.get("max_output_bytes", 1 << 20))
    sink = LogSink(channel, int(limits.get("max_log_lines", 200)))
    logger = logging.Logger("function", logging.DEBUG)
    logger.addHandler(SinkHandler(sink))
    stdout, stderr = LogStream(sink, "info", "print"), LogStream(sink, "error", "stderr")
    sys.stdout, sys.stderr = stdout, stderr
    context = run.get("context") or {}
    call = CallInfo(_dict_or_empty(context.get("call")))
    ctx = RunContext(_dict_or_empty(context.get("variables")), call, logger)
    namespace: dict[str, Any] = {
        "__name__": "__function__",
        "__builtins__": builtins,
        "RunContext": RunContext,
        "httpx": httpx,
        "logger": logger,
    }
    reply: dict[str, Any] | bytes
    try:
        code = compile(str(run["code"]), FILENAME, "exec", dont_inherit=True)
        exec(code, namespace)
        entry = namespace.get(str(run["entrypoint"]))
        if not callable(entry):
            raise NameError(f"the code defines no function named {run['entrypoint']!r}")
        value = entry(ctx, **dict(run.get("arguments") or {}))
        if inspect.isawaitable(value):
            value = await value
        reply = result_frame(value, max_output)
    except MemoryError:
        reply = MEMORY_ERROR
    except BaseException as exc:
        try:
            cause, errno_value = classify(exc)
            reply = {
                "t": "error",
                "kind": "exception",
                "detail": describe(exc),
                "cause": cause,
                "errno": errno_value,
            }
        except MemoryError:
            reply = MEMORY_ERROR
    finally:
        stdout.flush()
        stderr.flush()
    if isinstance(reply, bytes):
        channel.send_raw(reply)
    else:
        channel.send(reply)
