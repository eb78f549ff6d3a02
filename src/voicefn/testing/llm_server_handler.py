"""The request handler of :class:`~voicefn.testing.ScriptedLLM`: routes, the next scripted
reply for each ``POST /v1/chat/completions``, sent as SSE, as one JSON object, as an error, or
as recorded bytes, with the delays and disconnects the script asks for."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ._http import HANGUP_ERRORS, Disconnected, JSONHandler
from .llm_server_replies import ErrorReply, RawReply, Reply

if TYPE_CHECKING:
    from .llm_server import ScriptedLLM  # noqa: F401 (named in the base class below)


class ChatHandler(JSONHandler["ScriptedLLM"]):
    server_version = "ScriptedLLM/1.0"

    def setup(self) -> None:
        super().setup()
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.owner._connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.owner._connection_closed(self.connection)

    # -- plumbing -----------------------------------------------------------------------

    def _wait(self, seconds: float) -> None:
        """Sleep, but notice (and raise `Disconnected`) if the client closes the connection."""
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                readable, _, _ = select.select([self.connection], [], [], remaining)
            except (OSError, ValueError) as exc:
                raise Disconnected from exc
            if not readable:
                return
            try:
                peeked = self.connection.recv(1, socket.MSG_PEEK)
            except OSError as exc:
                raise Disconnected from exc
            if not peeked:
                raise Disconnected
            # The client sent bytes (unexpected mid-response); just sleep out the rest.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return

    def _send_error_json(self, status: int, message: str, type_: str = "server_error") -> None:
        self.send_json(status, {"error": {"message": message, "type": type_, "code": None}})

    # -- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._guard(self._get)

    def do_POST(self) -> None:
        self._guard(self._post)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except HANGUP_ERRORS:
            self.close_connection = True

    def _get(self) -> None:
        self.read_body()
        path = urlsplit(self.path).path.rstrip("/")
        if path == "/v1/models":
            model = {"id": "scripted", "object": "model", "created": 0, "owned_by": "voicefn"}
            self.send_json(200, {"object": "list", "data": [model]})
        elif path == "/v1/models/scripted":
            self.send_json(
                200, {"id": "scripted", "object": "model", "created": 0, "owned_by": "voicefn"}
            )
        else:
            self._send_error_json(404, f"ScriptedLLM: no route GET {path}", "invalid_request_error")

    def _post(self) -> None:
        arrived = time.perf_counter()
        raw = self.read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = urlsplit(self.path).path.rstrip("/")
        owner = self.owner
        if path != "/v1/chat/completions":
            self._send_error_json(
                404, f"ScriptedLLM: no route POST {path}", "invalid_request_error"
            )
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            message = "ScriptedLLM: request body is not a JSON object"
            owner._note_error(message)
            self._send_error_json(400, message, "invalid_request_error")
            return

        number, item = owner._take(body, arrived, headers)
        if item is None:
            message = f"ScriptedLLM: no scripted reply left for request #{number}"
            owner._note_error(message)
            self._send_error_json(500, message)
            return
        if not isinstance(item, Reply | ErrorReply | RawReply):
            try:
                item = item(body)
            except Exception as exc:
                message = f"ScriptedLLM: reply factory for request #{number} raised {exc!r}"
                owner._note_error(message)
                self._send_error_json(500, message)
                return
            if not isinstance(item, Reply | ErrorReply | RawReply):
                message = (
                    f"ScriptedLLM: reply factory for request #{number} returned "
                    f"{type(item).__name__}, expected Reply, ErrorReply or RawReply"
                )
                owner._note_error(message)
                self._send_error_json(500, message)
                return

        try:
            if isinstance(item, ErrorReply):
                self._wait(item.delay_before_s)
                self.send_json(item.status, item.body(), item.headers)
            elif isinstance(item, RawReply):
                self._raw(number, item)
            elif body.get("stream"):
                self._stream(number, body, item)
            else:
                self._wait(item.delay_before_s)
                self.send_json(200, owner._completion(number, body, item))
        except HANGUP_ERRORS:
            owner._note_disconnect(number)
            self.close_connection = True

    def _stream(self, number: int, body: dict[str, Any], reply: Reply) -> None:
        owner = self.owner
        self._wait(reply.delay_before_s)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_scripted_{number}")
        self.end_headers()

        for sent, (pause, data) in enumerate(owner._chunks(number, body, reply)):
            if reply.drop_after_chunks is not None and sent >= reply.drop_after_chunks:
                # Simulated network failure: the body never terminates.
                self.close_connection = True
                owner._note_disconnect(number)
                return
            self._wait(pause)
            event = b"data: " + data + b"\n\n"
            self.write(f"{len(event):x}\r\n".encode("ascii") + event + b"\r\n")
        self.write(b"0\r\n\r\n")

    def _raw(self, number: int, reply: RawReply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-request-id", f"req_scripted_{number}")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if reply.drop_after_bytes is not None:
            part = reply.body[: reply.drop_after_bytes]
            if part:
                self.write(f"{len(part):x}\r\n".encode("ascii") + part + b"\r\n")
            self.close_connection = True  # the body never ends
            self.owner._note_disconnect(number)
            return
        for event in reply.events():
            self.write(f"{len(event):x}\r\n".encode("ascii") + event + b"\r\n")
        self.write(b"0\r\n\r\n")
