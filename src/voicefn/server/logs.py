"""Structured JSON logs: one object per line with the request id and the workspace.

Nothing secret is logged on purpose; as a second line of defence every message is scrubbed of
anything shaped like an API key or a bearer credential before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "voicefn_request_id", default=None
)
workspace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "voicefn_workspace_id", default=None
)

_SCRUB = re.compile(
    r"vfn_[A-Za-z0-9_\-]{8,}|(?i:bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{6,}|"
    r"gAAAAA[A-Za-z0-9_\-=]{20,}"  # a Fernet token
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def scrub(text: str) -> str:
    return _SCRUB.sub("[redacted]", text)


_second: tuple[int, str] = (-1, "")


def _timestamp(created: float, msecs: float) -> str:
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _timestamp(record.created, record.msecs),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        rid, ws = request_id.get(), workspace_id.get()
        if rid:
            out["request_id"] = rid
        if ws:
            out["workspace_id"] = ws
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = scrub(self.formatException(record.exc_info))
        try:
            return orjson.dumps(out, default=str).decode()
        except TypeError:
            return json.dumps(out, default=str)


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Access lines (one per request) are buffered and written at most every half second;
    everything else at once. :func:`flush` empties the buffer (the app does on shutdown)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._last = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record), buffered=record.name == ACCESS)
        except Exception:
            self.handleError(record)

    def write(self, line: str, *, buffered: bool) -> None:
        self.stream.write(line + "\n")
        now = time.monotonic()
        if not buffered or now - self._last > 0.5:
            self._last = now
            self.flush()


_handlers: list[logging.Handler] = []
ACCESS = "voicefn.access"
_access = logging.getLogger(ACCESS)


def _direct_handler() -> _Handler | None:
    """The handler an access line would reach, when it is ours and nothing else could see or
    change the record on the way (no filter, no other handler): then it is written directly."""
    parent = _access.parent
    if _access.handlers or _access.filters or parent is None or parent.filters:
        return None
    if not _access.propagate or parent.propagate or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if type(handler) is not _Handler or handler.filters:
        return None
    if type(handler.formatter) is not JsonFormatter:
        return None
    return handler


def access(method: str, route: str, status: int, seconds: float) -> None:
    """The request's access line, ``"<method> <route> <status>"`` with ``status`` and
    ``duration_ms``. The same line as ``logging.getLogger("voicefn.access").info(...)`` writes,
    made without a LogRecord when the JSON handler of :func:`configure` is the only reader."""
    if not _access.isEnabledFor(logging.INFO):
        return
    duration_ms = round(seconds * 1000, 3)
    handler = _direct_handler()
    if handler is None:
        _access.info(
            "%s %s %d",
            method,
            route,
            status,
            extra={"status": status, "duration_ms": duration_ms},
        )
        return
    now = time.time()
    out: dict[str, Any] = {
        "ts": _timestamp(now, (now - int(now)) * 1000),
        "level": "info",
        "logger": ACCESS,
        "msg": scrub(f"{method} {route} {status}"),
    }
    rid, ws = request_id.get(), workspace_id.get()
    if rid:
        out["request_id"] = rid
    if ws:
        out["workspace_id"] = ws
    out["status"] = status
    out["duration_ms"] = duration_ms
    with handler.lock:  # type: ignore[union-attr]
        try:
            handler.write(orjson.dumps(out).decode(), buffered=True)
        except Exception:
            handler.handleError(logging.makeLogRecord({"name": ACCESS, "msg": out["msg"]}))


def flush() -> None:
    for handler in _handlers:
        handler.flush()


def configure(level: str = "info", stream: Any = None) -> logging.Handler:
    """Send voicefn's and uvicorn's logs to ``stream`` (default: stderr's descriptor, buffered)
    as JSON lines."""
    if stream is None:
        stream = open(os.dup(2), "w", buffering=1 << 16, encoding="utf-8", errors="replace")  # noqa: SIM115
    handler = _Handler(stream)
    _handlers.append(handler)
    handler.setFormatter(JsonFormatter())
    for name in ("voicefn", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs each request
    return handler
