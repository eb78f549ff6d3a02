"""The supervisor's side of the pipes: bounded frame reading and validation of untrusted input.

Everything a worker sends is untrusted: a frame larger than the cap, bytes that are not UTF-8
JSON, NaN/Infinity, a non-object, or a message of the wrong shape is a protocol violation.
"""

from __future__ import annotations

import asyncio
import errno
import math
import os
from dataclasses import dataclass
from typing import Any

from ..common import FRAME_HEADER as HEADER
from ..common import ProtocolError, clean_text, decode_json, encode_frame

__all__ = [
    "Eof",
    "FrameReader",
    "PipeWriter",
    "ProtocolError",
    "StdioCollector",
    "check_message",
    "clean_text",
    "decode_json",
    "encode_frame",
    "is_json_value",
]


@dataclass(frozen=True)
class Eof:
    """The worker closed its end of the pipe."""


class FrameReader:
    """Reads length-prefixed JSON frames from a non-blocking pipe into an asyncio queue.

    At most ``max_frame`` bytes per frame, ``max_total`` bytes and ``max_frames`` frames in all;
    going over any of them queues a :class:`ProtocolError` and stops reading.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        *,
        max_frame: int,
        max_total: int,
        max_frames: int,
    ) -> None:
        self.loop = loop
        self.fd = fd
        self.max_frame = max_frame
        self.max_total = max_total
        self.max_frames = max_frames
        self.queue: asyncio.Queue[dict[str, Any] | Eof | ProtocolError] = asyncio.Queue()
        self._buf = bytearray()
        self._total = 0
        self._frames = 0
        self._stopped = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._on_readable)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.loop.remove_reader(self.fd)

    def _fail(self, why: str) -> None:
        self.stop()
        self.queue.put_nowait(ProtocolError(why))

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.stop()
            self.queue.put_nowait(Eof())
            return
        self._total += len(data)
        if self._total > self.max_total:
            self._fail(f"the worker sent more than {self.max_total} bytes")
            return
        self._buf += data
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if size > self.max_frame:
                self._fail(f"the worker sent a frame of {size} bytes (limit {self.max_frame})")
                return
            if len(self._buf) < HEADER.size + size:
                return
            payload = bytes(self._buf[HEADER.size : HEADER.size + size])
            del self._buf[: HEADER.size + size]
            self._frames += 1
            if self._frames > self.max_frames:
                self._fail(f"the worker sent more than {self.max_frames} messages")
                return
            try:
                msg = decode_json(payload)
            except ProtocolError as exc:
                self._fail(str(exc))
                return
            if not isinstance(msg, dict) or not isinstance(msg.get("t"), str):
                self._fail("a message is not a JSON object with a type")
                return
            self.queue.put_nowait(msg)


class PipeWriter:
    """Writes frames to the child's non-blocking pipe: straight away when the pipe has room (the
    usual case: a ``run`` frame, an HTTP answer), the rest when it becomes writable. Owns ``fd``.
    (An asyncio pipe transport costs ~40 us and a loop iteration per invocation to set up.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self.loop = loop
        self.fd = fd
        self._buf = bytearray()
        self._waiting = False
        os.set_blocking(fd, False)

    def is_closing(self) -> bool:
        return self.fd < 0

    def get_write_buffer_size(self) -> int:
        return len(self._buf)

    def write(self, data: bytes) -> None:
        if self.fd < 0:
            return
        if self._buf:
            self._buf += data
            return
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the child is gone or closed its end: nothing more to say to it
            self.abort()
            return
        if sent < len(data):
            self._buf += data[sent:]
            self._waiting = True
            self.loop.add_writer(self.fd, self._on_writable)

    def _on_writable(self) -> None:
        try:
            sent = os.write(self.fd, self._buf)
        except BlockingIOError:
            return
        except OSError:
            self.abort()
            return
        del self._buf[:sent]
        if not self._buf:
            self._waiting = False
            self.loop.remove_writer(self.fd)

    def abort(self) -> None:
        """Drop what is buffered and close the pipe."""
        if self.fd < 0:
            return
        if self._waiting:
            self._waiting = False
            self.loop.remove_writer(self.fd)
        self._buf.clear()
        fd, self.fd = self.fd, -1
        os.close(fd)


class StdioCollector:
    """Drains the child's fd 1/2 pipe (C-level output), keeping at most ``limit`` bytes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, limit: int) -> None:
        self.loop = loop
        self.fd = fd
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0
        self.closed = False
        os.set_blocking(fd, False)
        loop.add_reader(fd, self.drain)

    def drain(self) -> None:
        while not self.closed:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.close()
                return
            room = self.limit - len(self.data)
            self.data += chunk[: max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)

    def lines(self) -> list[str]:
        text = self.data.decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------- the child's messages

#: Log sources the child may use: all of them are the FUNCTION's lines. ``sandbox`` (the
#: engine's own lines) is only ever written by the supervisor.
CHILD_LOG_SOURCES = frozenset({"logger", "print", "stderr"})
LOG_LEVELS = frozenset({"debug", "info", "warning", "error", "critical"})
MAX_MESSAGE_ID = 1 << 31
#: The longest per-request timeout the child may ask for (the child clamps to this).
MAX_REQUEST_TIMEOUT_S = 1e6
MAX_CHILD_TEXT = 64 * 1024
#: What the child may say about an exception's cause: facts, not layer names. The supervisor
#: decides ``stopped_by`` from them (:func:`layer_of`).
ERROR_CAUSES = frozenset({"egress", "memory", "threads", "errno"})
ERROR_KINDS = frozenset({"exception", "memory", "invalid_output"})
_ERRNO_LAYERS = {
    errno.EPERM: "seccomp",
    errno.ENOENT: "mount-namespace",
    errno.EROFS: "read-only-mount",
    errno.EACCES: "file-permissions",
    errno.EMFILE: "rlimit-nofile",
}
_FIELDS: dict[str, frozenset[str]] = {
    "log": frozenset({"t", "level", "message", "source"}),
    "log_limit": frozenset({"t"}),
    "http": frozenset({"t", "id", "method", "url", "headers", "body", "timeout"}),
    "result": frozenset({"t", "value"}),
    "error": frozenset({"t", "kind", "detail", "cause", "errno"}),
}


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any, low: float, high: float) -> bool:
    """A finite int or float in [low, high], compared without converting a huge int to float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return low <= value <= high


def _is_text(value: Any, limit: int = MAX_CHILD_TEXT) -> bool:
    return isinstance(value, str) and len(value) <= limit


def check_message(msg: dict[str, Any]) -> str | None:
    """What is wrong with a message from the child (None: nothing). Every field of every message
    type is checked: only known fields, the right types, numbers finite and in range, strings
    bounded. (An ``http`` message's method, URL, headers and body are checked in depth by
    ``common.validate_request`` as well; a ``result`` value by the supervisor.)"""
    kind = msg.get("t")
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return f"unknown message type {clean_text(kind, 20)!r}"
    if not set(msg) <= fields:
        return f"unknown fields in a {kind!r} message"
    if kind == "log":
        if msg.get("level") not in LOG_LEVELS:
            return "a log line with a bad level"
        if not _is_text(msg.get("message")):
            return "a log line with a bad message"
        if msg.get("source") not in CHILD_LOG_SOURCES:
            return "a log line with a source the function may not use"
    elif kind == "http":
        if not _is_int(msg.get("id"), 1, MAX_MESSAGE_ID):
            return "an HTTP request with a bad id"
        timeout = msg.get("timeout")
        if timeout is not None and not _is_number(timeout, 0, MAX_REQUEST_TIMEOUT_S):
            return "an HTTP request with a bad timeout"
        if not (
            _is_text(msg.get("method"), 16)
            and _is_text(msg.get("url"), 1 << 16)
            and isinstance(msg.get("headers"), list)
            and isinstance(msg.get("body"), str)
        ):
            return "a malformed HTTP request"
    elif kind == "result":
        if "value" not in msg:
            return "a result without a value"
    elif kind == "error":
        if msg.get("kind") not in ERROR_KINDS:
            return "unknown error kind"
        if not _is_text(msg.get("detail", "")):
            return "an error with a bad detail"
        cause = msg.get("cause")
        if cause is not None and cause not in ERROR_CAUSES:
            return "an error with an unknown cause"
        code = msg.get("errno")
        if code is not None and not _is_int(code, 0, 4095):
            return "an error with a bad errno"
    return None


def layer_of(cause: Any, code: Any, *, egress_denied: bool) -> str | None:
    """``stopped_by`` for an exception, decided by the supervisor from the child's facts (its
    cause and errno) and its own record: ``egress-policy`` only when the egress policy really
    refused a request of this invocation."""
    if cause == "egress":
        return "egress-policy" if egress_denied else None
    if cause == "memory":
        return "rlimit-as"
    if cause == "threads":
        return "rlimit-nproc"
    if cause == "errno" and isinstance(code, int) and not isinstance(code, bool):
        return _ERRNO_LAYERS.get(code)
    return None


def is_json_value(value: Any, depth: int = 0) -> bool:
    """True for values made of dict/list/str/int/float (finite)/bool/None only."""
    if depth > 200:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v, depth + 1) for k, v in value.items())
    return False
