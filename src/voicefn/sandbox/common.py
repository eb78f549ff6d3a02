"""What the Python and JavaScript sandboxes share on the supervisor's (trusted) side.

The public types (:class:`Limits`, :class:`Outcome`, :class:`SandboxUnavailable`, ``Egress``,
``Mode``), the length-prefixed JSON frames, cleaning of untrusted text, and the HTTP requests
sandboxed code makes: validating the request it sends, calling the caller's ``egress`` callback
(with a timeout and the request limit), keeping the ``Outcome.http`` record, and cleaning what
the callback returned before it goes back in.

Nothing here runs inside a sandbox: the Python worker's own code (``python/sandboxed/``) runs
under the system python and never imports voicefn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..egress import EgressDenied
from ..redaction import redact_url

__all__ = [
    "EGRESS_GRACE_S",
    "FRAME_HEADER",
    "FRAMING_HEADERS",
    "MAX_HEADERS",
    "MAX_HEADER_CHARS",
    "MAX_REQUEST_BODY_B64",
    "MAX_RESPONSE_BODY_B64",
    "MAX_URL",
    "WEAK_DETAIL_PREFIX",
    "Egress",
    "EgressCalls",
    "ErrorKind",
    "Limits",
    "Mode",
    "Outcome",
    "ProtocolError",
    "SandboxUnavailable",
    "check_mode",
    "clean_text",
    "decode_json",
    "encode_frame",
    "ms",
    "normalize_headers",
    "safe_url",
    "validate_request",
    "validate_response",
]

Egress = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
Mode = Literal["isolated", "unsafe-process"]
ErrorKind = Literal[
    "timeout",
    "memory",
    "crashed",
    "invalid_output",
    "exception",
    "too_many_requests",
    "unavailable",
]

WEAK_DETAIL_PREFIX = "[WEAKLY isolated: unsafe-process mode]"
MAX_URL = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192
MAX_HEADER_NAME = 256
MAX_REQUEST_BODY_B64 = 6 << 20  # a 4 MiB body, base64
MAX_RESPONSE_BODY_B64 = 11 << 20  # ~8 MiB decoded
MAX_EGRESS_ERROR = 500
#: how much later than the code's own request timeout the supervisor gives up on ``egress``
EGRESS_GRACE_S = 1.0

FRAME_HEADER = struct.Struct(">I")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_DROP_RESPONSE_HEADERS = frozenset(
    {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}
)


# ------------------------------------------------------------------------------- public types


def check_mode(mode: object) -> Mode:
    """``mode`` if it is one of the two modes; :class:`ValueError` otherwise."""
    if mode == "isolated":
        return "isolated"
    if mode == "unsafe-process":
        return "unsafe-process"
    raise ValueError(f"mode must be 'isolated' or 'unsafe-process', not {mode!r}")


class SandboxUnavailable(RuntimeError):
    """A sandbox cannot run on this host. The message says what is missing, how to get it, and
    that ``mode="unsafe-process"`` is the explicit weaker alternative; ``what`` is the short
    reason alone."""

    def __init__(self, message: str, *, what: str | None = None) -> None:
        super().__init__(message)
        self.what = message if what is None else what


@dataclass(frozen=True)
class Limits:
    """Per-run limits both sandboxes take; each sandbox's ``Limits`` subclasses this one."""

    _POSITIVE: ClassVar[tuple[str, ...]] = ("timeout_s",)
    _COUNTS: ClassVar[tuple[str, ...]] = (
        "memory_mb",
        "max_output_bytes",
        "max_log_lines",
        "max_http_requests",
    )

    timeout_s: float = 10.0
    memory_mb: int = 256
    max_output_bytes: int = 1 << 20
    max_log_lines: int = 200
    max_http_requests: int = 20

    def __post_init__(self) -> None:
        for name in self._POSITIVE:
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(f"Limits.{name} must be a positive number, not {value!r}")
        for name in self._COUNTS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, not {value!r}")
        if self.memory_mb < 16:
            raise ValueError(f"Limits.memory_mb must be at least 16, not {self.memory_mb}")


@dataclass
class Outcome:
    """How one run ended. Everything in it is safe to log; ``detail`` is short and safe to show
    an LLM."""

    ok: bool
    value: Any
    error: ErrorKind | None
    detail: str
    logs: list[dict[str, Any]] = field(default_factory=list)
    http: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    isolation: str = "isolated"  # or "weak" (mode="unsafe-process")
    #: JavaScript only: "realm" (a fresh V8 context in a reused Worker, the fast path) or
    #: "worker" (a fresh Worker); None for Python, for runs refused before they started, and
    #: when the process died before its host said (a heap bomb, a crash)
    runner: str | None = None

    @property
    def weakly_isolated(self) -> bool:
        return self.isolation != "isolated"

    def mark_weak(self) -> None:
        """Say that this run was weakly isolated (``mode="unsafe-process"``), in ``detail`` too."""
        self.isolation = "weak"
        if not self.detail.startswith(WEAK_DETAIL_PREFIX):
            self.detail = f"{WEAK_DETAIL_PREFIX} {self.detail}".strip()


# ------------------------------------------------------------------------------- text


def clean_text(value: Any, limit: int) -> str:
    """A bounded, printable string from untrusted input: valid UTF-8 (lone surrogates become
    ``?``), control characters but tabs and newlines become ``?``, at most ``limit`` chars + …"""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL_CHARS.sub("?", text)
    return text if len(text) <= limit else text[:limit] + "…"


def safe_url(url: str, limit: int = 2000) -> str:
    """A URL the code requested, safe to record and show (``Outcome.http``, notes, ``invoke``):
    :func:`voicefn.redaction.redact_url`, bounded."""
    return clean_text(redact_url(url), limit)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


# ------------------------------------------------------------------------------- frames


class ProtocolError(Exception):
    """The sandboxed side sent something it must not (``str(exc)`` is safe to show)."""


def encode_frame(msg: dict[str, Any]) -> bytes:
    """A 4-byte big-endian length and ``msg`` as compact UTF-8 JSON (no NaN/Infinity).

    A string with a lone surrogate (text an LLM or a caller cut mid-character) cannot be UTF-8:
    then every non-ASCII character is written as a ``\\u`` escape, which the other side's JSON
    reads back as the very same string."""
    text = json.dumps(msg, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    try:
        payload = text.encode()
    except UnicodeEncodeError:
        payload = json.dumps(msg, allow_nan=False, separators=(",", ":")).encode()
    return FRAME_HEADER.pack(len(payload)) + payload


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(payload: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, bounded nesting; :class:`ProtocolError` else."""
    try:
        return json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"not valid JSON ({type(exc).__name__})") from None


# ------------------------------------------------------------------------------- HTTP


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


#: Headers sandboxed code may not set: the engine frames the request itself (length, encoding,
#: connection handling, host), so a request cannot smuggle a second one onto a connection.
FRAMING_HEADERS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "host",
        "expect",
        "http2-settings",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\x00\r\n]")
#: An HTTP timeout sandboxed code asks for is clamped to this (the run's deadline bounds it too).
MAX_REQUEST_TIMEOUT_S = 3600.0


def _timeout(value: object) -> float | str | None:
    """The code's own timeout in seconds (None: none), or what is wrong with it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "a bad timeout"
    try:
        seconds = float(value)
    except OverflowError:  # a 400-digit integer: longer than any deadline
        return None
    if math.isnan(seconds):
        return "a bad timeout"
    return None if seconds > MAX_REQUEST_TIMEOUT_S else max(0.0, seconds)


def normalize_headers(pairs: list[list[str]]) -> tuple[list[list[str]], list[str], str | None]:
    """``(kept, dropped names, refusal)``: framing and hop-by-hop headers (and ``Proxy-*``) are
    dropped; a name that is not an HTTP token or a value with CR, LF or NUL refuses the request."""
    kept: list[list[str]] = []
    dropped: list[str] = []
    for name, value in pairs:
        if not _TOKEN.match(name):
            return [], [], f"the header name {clean_text(name, 60)!r} is not valid"
        if _BAD_VALUE.search(value):
            return [], [], f"the value of the header {name!r} contains CR, LF or NUL"
        lower = name.lower()
        if lower == "accept-encoding":
            continue  # replaced, not dropped: the engine asks for what it decodes in budget
        if lower in FRAMING_HEADERS or lower.startswith("proxy-"):
            dropped.append(name)
        else:
            kept.append([name, value])
    return kept, dropped, None


def validate_request(msg: dict[str, Any]) -> dict[str, Any] | str:
    """An HTTP request frame as the request for ``egress``, or what is wrong with the frame.

    The request has ``method``, ``url``, ``headers`` (``[name, value]`` pairs, normalised by
    :func:`normalize_headers`), ``dropped_headers``, ``body`` (base64, at most
    :data:`MAX_REQUEST_BODY_B64` characters), ``timeout`` (the code's own timeout in seconds,
    or None) and, when the code's request itself must not be sent, ``refused`` (why).
    """
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
    pairs: list[list[str]] = []
    for pair in headers:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(x, str) and len(x) <= MAX_HEADER_CHARS for x in pair)
        ):
            return "bad HTTP headers"
        pairs.append([pair[0], pair[1]])
    if not isinstance(body, str) or len(body) > MAX_REQUEST_BODY_B64 or not _is_base64(body):
        return "a bad HTTP body"
    timeout = _timeout(msg.get("timeout"))
    if isinstance(timeout, str):
        return timeout
    kept, dropped, refused = normalize_headers(pairs)
    request: dict[str, Any] = {
        "method": method,
        "url": url,
        "headers": kept,
        "dropped_headers": dropped,
        "body": body,
        "timeout": timeout,
    }
    if refused is not None:
        request["refused"] = refused
    return request


def validate_response(response: Any) -> dict[str, Any]:
    """What ``egress`` returned, bounded and cleaned for the sandboxed code (or ``{"error"}``)."""
    if not isinstance(response, dict):
        return {"error": "the egress callback returned no response"}
    if "error" in response:
        return {"error": clean_text(response["error"], MAX_EGRESS_ERROR)}
    status, headers, body = (
        response.get("status"),
        response.get("headers", []),
        response.get("body", ""),
    )
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        return {"error": "the egress callback returned a bad status"}
    if not isinstance(body, str) or len(body) > MAX_RESPONSE_BODY_B64:
        return {"error": "the response body is too large or malformed"}
    if not _is_base64(body):
        return {"error": "the response body is malformed"}
    clean_headers: list[list[str]] = []
    for pair in list(headers or [])[:MAX_HEADERS]:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            key = clean_text(str(pair[0]), MAX_HEADER_NAME)
            value = clean_text(str(pair[1]), MAX_HEADER_CHARS)
            if key and key.lower() not in _DROP_RESPONSE_HEADERS:
                clean_headers.append([key, value])
    return {"status": status, "headers": clean_headers, "body": body}


class EgressCalls:
    """The HTTP requests of one run: each goes to the caller's ``egress`` callback, at most
    ``max_requests`` of them, and each is recorded in :attr:`http` (``Outcome.http``).

    ``reply(rid, answer)`` sends the answer (``status``/``headers``/``body`` or ``error``) back
    to the sandboxed code. ``deadline`` (``time.monotonic()``) is the end of the run: no call
    waits past it.
    """

    def __init__(
        self,
        egress: Egress,
        *,
        max_requests: int,
        deadline: float,
        reply: Callable[[int, dict[str, Any]], None],
    ) -> None:
        self.egress = egress
        self.max_requests = max_requests
        self.deadline = deadline
        self.reply = reply
        self.http: list[dict[str, Any]] = []
        self.count = 0
        self.too_many = False
        self.denied = False  # the egress policy refused at least one request
        self.tasks: set[asyncio.Task[None]] = set()

    def submit(self, rid: object, msg: dict[str, Any]) -> bool:
        """Start the egress call for one request frame. False when it is over the request limit
        (recorded once, never sent); :class:`ProtocolError` when the frame is malformed."""
        if not isinstance(rid, int) or isinstance(rid, bool):
            raise ProtocolError("an HTTP request without an id")
        request = validate_request(msg)
        if isinstance(request, str):
            raise ProtocolError(request)
        self.count += 1
        if self.count > self.max_requests:
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
            return False
        task = asyncio.ensure_future(self._call(rid, request))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def _call(self, rid: int, request: dict[str, Any]) -> None:
        started = time.perf_counter()
        record: dict[str, Any] = {"method": request["method"], "url": safe_url(request["url"])}
        self.http.append(record)
        if request["dropped_headers"]:
            record["dropped_headers"] = request["dropped_headers"]
        if "refused" in request:
            record["error"] = f"not sent: {request['refused']}"
            record["ms"] = 0.0
            self.reply(rid, {"error": record["error"]})
            return
        remaining = max(0.001, self.deadline - time.monotonic())
        wait = remaining
        asked = request.get("timeout")
        if isinstance(asked, float):
            # a little later than the code's own timeout, so that one fires first
            wait = min(remaining, asked + EGRESS_GRACE_S)
            remaining = min(remaining, asked)
        request["timeout"] = round(remaining, 3)
        try:
            response = await asyncio.wait_for(self.egress(dict(request)), timeout=wait)
            if isinstance(response, dict) and response.get("denied") is True:
                self.denied = True
            answer = validate_response(response)
        except EgressDenied as exc:
            self.denied = True
            answer = {"error": f"refused by the egress policy: {clean_text(str(exc), 300)}"}
        except TimeoutError:
            answer = {"error": "the request timed out"}
        except asyncio.CancelledError:
            record["error"] = "cancelled"
            record["ms"] = ms(time.perf_counter() - started)
            raise
        except Exception as exc:
            answer = {"error": f"the request failed ({type(exc).__name__})"}
        if "error" in answer:
            record["error"] = answer["error"]
        else:
            record["status"] = answer["status"]
        record["ms"] = ms(time.perf_counter() - started)
        self.reply(rid, answer)

    def cancel(self) -> None:
        """Cancel the calls still running (without waiting for them)."""
        for task in list(self.tasks):
            task.cancel()

    async def aclose(self) -> None:
        """Cancel the calls still running and wait until they ended."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
