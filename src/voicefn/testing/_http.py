"""Plumbing shared by the HTTP test doubles (`ScriptedLLM`, `FakeTwilio`).

Each double is a real ``ThreadingHTTPServer`` listening on 127.0.0.1 (ephemeral port by
default), served from a daemon thread, usable as a sync or async context manager. Handler
threads are daemons; a client that hangs up mid-answer (timeout, dropped connection) is not
reported as an error. Only the standard library is used.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Self, TypeVar

__all__ = [
    "HANGUP_ERRORS",
    "Disconnected",
    "JSONHandler",
    "LocalHTTPServer",
    "OwnedServer",
]


class Disconnected(Exception):
    """The client went away while we were answering."""


HANGUP_ERRORS: tuple[type[Exception], ...] = (
    Disconnected,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)
"""What a handler sees when the client hangs up; never worth a traceback."""

T = TypeVar("T")
OwnerT = TypeVar("OwnerT", bound="LocalHTTPServer")


class OwnedServer(ThreadingHTTPServer, Generic[OwnerT]):
    """A ``ThreadingHTTPServer`` with daemon handler threads that knows the double owning it."""

    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: OwnerT,
    ) -> None:
        super().__init__(address, handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, HANGUP_ERRORS):
            self.owner._handler_crashed(exc)


class JSONHandler(BaseHTTPRequestHandler, Generic[OwnerT]):
    """HTTP/1.1 keep-alive handler with silent logging and JSON helpers."""

    protocol_version = "HTTP/1.1"
    server: OwnedServer[OwnerT]

    @property
    def owner(self) -> OwnerT:
        return self.server.owner

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def write(self, data: bytes) -> None:
        """Write and flush; raise `Disconnected` if the client is gone."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (OSError, ValueError) as exc:
            raise Disconnected from exc

    def send_json(
        self,
        status: int,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str = "application/json",
        ensure_ascii: bool = False,
    ) -> None:
        """Answer ``payload`` as JSON with a ``Content-Length``; ``headers`` are added last."""
        body = json.dumps(payload, ensure_ascii=ensure_ascii).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.write(body)


class LocalHTTPServer:
    """Base of the doubles: runs an `OwnedServer` on a daemon thread between `start` and `close`.

    Subclasses set ``_handler_class``; ``_error_if_running`` makes a second `start` raise instead
    of doing nothing; ``_not_running_message`` is raised by `_bound_port` before `start`.
    """

    _handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    _error_if_running: ClassVar[bool] = False
    _not_running_message: ClassVar[str] = "server is not running"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._server: OwnedServer[Self] | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            if self._error_if_running:
                raise RuntimeError(f"{type(self).__name__} is already running")
            return self
        server = OwnedServer((self._host, self._port), self._handler_class, self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{type(self).__name__}:{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop the server (a no-op if it is not running); see `_server_closed`."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._server_closed()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # -- hooks and helpers for subclasses -----------------------------------------------

    def _bound_port(self) -> int:
        if self._server is None:
            raise RuntimeError(self._not_running_message)
        return int(self._server.server_address[1])

    def _server_closed(self) -> None:
        """Called by `close` after the listening socket is closed, before joining the thread."""

    def _handler_crashed(self, exc: BaseException) -> None:
        """A handler raised something other than a hang-up (called on its thread)."""

    def _snapshot(self, items: list[T]) -> list[T]:
        """A copy of ``items`` taken under the lock."""
        with self._lock:
            return list(items)
