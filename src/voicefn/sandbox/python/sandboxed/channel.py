"""Frames (a 4-byte big-endian length, then UTF-8 JSON) and the child's pipes to the supervisor."""

from __future__ import annotations

import asyncio
import json
import os
import select
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

HEADER = struct.Struct(">I")
MAX_INBOUND_FRAME = 64 << 20


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def read_exact(fd: int, n: int) -> bytes | None:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame_blocking(fd: int) -> dict[str, Any] | None:
    head = read_exact(fd, HEADER.size)
    if head is None:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_INBOUND_FRAME:
        return None
    body = read_exact(fd, size)
    if body is None:
        return None
    msg = json.loads(body)
    return msg if isinstance(msg, dict) else None


class Channel:
    """The child's private pipes to the supervisor: log/http/result out, http responses in."""

    def __init__(self, in_fd: int, out_fd: int) -> None:
        self.in_fd = in_fd
        self.out_fd = out_fd
        self._buf = bytearray()
        self._pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._next_id = 0
        self._wlock = threading.Lock()
        self._rlock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        os.set_blocking(self.in_fd, False)
        loop.add_reader(self.in_fd, self._on_readable)
        self._loop = loop

    def send(self, msg: dict[str, Any]) -> None:
        self.send_raw(encode(msg))

    def send_raw(self, payload: bytes) -> None:
        view = memoryview(HEADER.pack(len(payload)) + payload)
        with self._wlock:
            while view:
                view = view[os.write(self.out_fd, view) :]

    def _on_readable(self) -> None:
        with self._rlock:
            self._pump()

    def _pump(self) -> bool:
        """Read what is there and dispatch complete frames; False once the pipe is closed."""
        try:
            data = os.read(self.in_fd, 1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:
            self.closed = True
            if self._loop is not None:
                self._loop.remove_reader(self.in_fd)
            for deliver in list(self._pending.values()):
                deliver({"error": "the sandbox channel was closed"})
            self._pending.clear()
            return False
        self._buf += data
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf)
            if len(self._buf) < HEADER.size + size:
                break
            body = bytes(self._buf[HEADER.size : HEADER.size + size])
            del self._buf[: HEADER.size + size]
            msg = json.loads(body)
            if isinstance(msg, dict) and msg.get("t") == "http_response":
                rid = msg.get("id")
                waiter = self._pending.pop(rid) if rid in self._pending else None
                if waiter is not None:
                    waiter(msg)
        return True

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def request(self, msg: dict[str, Any], wait_s: float | None) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[dict[str, Any]] = loop.create_future()

        def resolve(resp: dict[str, Any]) -> None:
            if not fut.done():
                fut.set_result(resp)

        def deliver(resp: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(resolve, resp)

        rid = self._new_id()
        self._pending[rid] = deliver
        try:
            self.send({**msg, "id": rid})
            return await asyncio.wait_for(fut, wait_s)
        finally:
            self._pending.pop(rid, None)

    def request_blocking(self, msg: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        box: list[dict[str, Any]] = []
        rid = self._new_id()
        self._pending[rid] = box.append
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.send({**msg, "id": rid})
            while not box:
                wait = 0.05
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError
                with self._rlock:
                    if box:
                        break
                    ready, _, _ = select.select([self.in_fd], [], [], wait)
                    if ready and not self._pump() and not box:
                        raise ConnectionError("the sandbox channel was closed")
            return box[0]
        finally:
            self._pending.pop(rid, None)
