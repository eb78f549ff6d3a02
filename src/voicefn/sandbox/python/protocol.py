"""The supervisor's side of the pipes: bounded frame reading and validation of untrusted input.

Everything a worker sends is untrusted: a frame larger than the cap, bytes that are not UTF-8
JSON, NaN/Infinity, a non-object, or a message of the wrong shape is a protocol violation.
"""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass
from typing import Any

from ..common import FRAME_HEADER as HEADER
from ..common import ProtocolError, clean_text, decode_json, encode_frame

__all__ = [
    "Eof",
    "FrameReader",
    "ProtocolError",
    "StdioCollector",
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
